/* Flowboard time travel: a range slider that drives a datetime input.
 * Plain ES2020, loaded with `defer`, CSP-safe.
 *
 *   <form ...>
 *     <input type="range" data-time-slider data-time-input="#at"
 *            min="<epoch s>" max="<epoch s>" step="60" value="<epoch s>">
 *     <input type="datetime-local" id="at" name="at">   (or type="hidden"/"text": ISO 8601 UTC)
 *     <output data-time-label></output>                  (optional human-readable label)
 *   </form>
 *
 * Slider values are Unix epoch seconds (data-time-unit="ms" for milliseconds).
 * Dragging updates the paired input; releasing (change) submits the form with
 * requestSubmit(), so htmx-enhanced forms (hx-get) and plain GET forms both work.
 * Typing in the paired input moves the slider back.
 */
(() => {
  'use strict';
  const pad = (n) => String(n).padStart(2, '0');
  const toLocalInput = (d) =>
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const fmt = (typeof Intl !== 'undefined' && Intl.DateTimeFormat)
    ? new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : null;

  function pairOf(slider) {
    const form = slider.form || slider.closest('form');
    const sel = slider.dataset.timeInput;
    const input = (sel && document.querySelector(sel))
      || (form && form.querySelector('input[type="datetime-local"], input[data-time-value]'));
    const label = (form && form.querySelector('[data-time-label]')) || null;
    return { form, input, label };
  }
  const unit = (slider) => (slider.dataset.timeUnit === 'ms' ? 1 : 1000);

  function sliderToInput(slider) {
    const { input, label } = pairOf(slider);
    const d = new Date(Number(slider.value) * unit(slider));
    if (Number.isNaN(d.getTime())) return;
    if (input) input.value = input.type === 'datetime-local' ? toLocalInput(d) : d.toISOString();
    const text = fmt ? fmt.format(d) : d.toString();
    if (label) label.textContent = text;
    slider.setAttribute('aria-valuetext', text);
  }
  function inputToSlider(slider) {
    const { input } = pairOf(slider);
    if (!input || !input.value) return;
    const ms = new Date(input.value).getTime(); // datetime-local parses as local time
    if (Number.isNaN(ms)) return;
    slider.value = String(Math.round(ms / unit(slider)));
    sliderToInput(slider);
  }
  function submit(form) {
    if (!form) return;
    if (typeof form.requestSubmit === 'function') form.requestSubmit();
    else form.submit();
  }

  function bind(root) {
    (root.querySelectorAll ? root : document).querySelectorAll('input[type="range"][data-time-slider]').forEach((slider) => {
      if (slider.dataset.timeBound === '1') return;
      slider.dataset.timeBound = '1';
      const { input } = pairOf(slider);
      if (input && input.value) inputToSlider(slider); else sliderToInput(slider);
      slider.addEventListener('input', () => sliderToInput(slider));
      slider.addEventListener('change', () => { sliderToInput(slider); submit(pairOf(slider).form); });
      if (input) input.addEventListener('change', () => inputToSlider(slider));
    });
  }

  const start = () => bind(document);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
  document.addEventListener('htmx:load', (evt) => bind(evt.target));
})();
