/* Flowboard board behaviour. Plain ES2020, no build step, loaded with `defer`
 * after htmx.min.js and Sortable.min.js. CSP-safe: no inline handlers, no eval.
 *
 * Contract with the templates (see VERSIONS.md / report):
 *   <meta name="csrf-token" content="...">       CSRF token for every htmx request
 *   #board                                       the board element (swapped outerHTML)
 *   [data-sortable-state="<state id>"]           a drop zone inside a state column
 *   article.card[data-item-id][data-pull-url]    a draggable card (no pull URL: not draggable)
 *   [data-focus-after-swap] or [role=alert]      focused after a user-initiated #board swap
 *   a[data-drawer] (board.js fetches its href into #drawer-body, or its own hx-get does)
 *                                                opens <dialog id="drawer">
 *   [data-drawer-close]                          closes the drawer
 *   button[form="card-act"][formaction] on a card   Pull / Mark ready / Unblock: posted with
 *     htmx into #board (without JavaScript: a plain post of form#card-act, its CSRF field)
 *   a[data-dialog="block"|"send-back"] on a card (aria-label "Block KEY", optional
 *     data-to="<state ids>")                     opens dialog#block-dialog / #send-back-dialog
 *     (its form's data-action has "{id}"); without the dialog the link is followed
 *   [data-dialog-close]                          closes an action dialog
 *   body or #board: data-live-url (SSE), data-refresh-url (GET for #board),
 *                   optional data-live-events="name1,name2" (named SSE events)
 *   Deltas (X-Flowboard-Delta answers to actions; SSE `event: delta` on board pages):
 *     div[data-delta][data-seen][data-lane] holding heads (elements with an id that replace the
 *     page's element of that id: #wip-S, #signal-RUN, #more-RUN, #my-summary) and
 *     div[data-card-for=ID][data-run=RUN][data-after=ID?] wrappers with the card's new copy
 *     (empty: no longer shown). A delta's parts replace only what is not newer: the page's
 *     elements read their event id from data-seen (set when a delta put them there) or #board.
 *   SSE `event: refresh`: reload #board (a change that is not about cards).
 *   #live-status                                 "Live" / "Reconnecting…" / "Offline"
 */
(() => {
  'use strict';

  const BOARD_ID = 'board';
  const REFRESH_HEADER = 'X-Flowboard-Refresh';
  const GROUP = 'flowboard-cards';
  const DEBOUNCE_MS = 300;

  const $board = () => document.getElementById(BOARD_ID);
  const csrfToken = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute('content') || '' : '';
  };
  const hasHtmx = () => typeof window.htmx !== 'undefined';
  const isBoardTarget = (evt) => {
    const d = evt.detail || {};
    return (d.target && d.target.id === BOARD_ID) || (evt.target && evt.target.id === BOARD_ID);
  };
  const isLiveRequest = (evt) => {
    const rc = evt.detail && evt.detail.requestConfig;
    return !!(rc && rc.headers && rc.headers[REFRESH_HEADER]);
  };

  /* ---------------- CSRF ---------------- */
  document.addEventListener('htmx:configRequest', (evt) => {
    const token = csrfToken();
    if (token) evt.detail.headers['X-CSRF-Token'] = token;
  });

  /* Refusals (409 Conflict / 422 Unprocessable) come back as a board fragment
   * with an alert: htmx 2 does not swap 4xx by default, so allow it for #board
   * when the server sent HTML. Other errors: show a client-side alert. */
  document.addEventListener('htmx:beforeSwap', (evt) => {
    const d = evt.detail;
    const status = d.xhr ? d.xhr.status : 0;
    if (d.xhr && d.xhr.getResponseHeader('X-Flowboard-Delta') === '1' && status === 200) {
      d.shouldSwap = false;
      applyUserDelta(d.xhr.responseText);
      return;
    }
    // X-Flowboard-Refusal: the server rendered a refusal (any 4xx, e.g. a role's 403 or a
    // stale edit in the item panel) as HTML for this target: swap it like 409/422 on #board.
    const refusal = d.xhr && d.xhr.getResponseHeader('X-Flowboard-Refusal') === '1';
    if (((status === 409 || status === 422) && isBoardTarget(evt)) || (refusal && status >= 400 && status < 500)) {
      const type = (d.xhr.getResponseHeader('Content-Type') || '').toLowerCase();
      if (type.includes('text/html')) {
        d.shouldSwap = true;
        d.isError = false;
      }
    }
  });

  function showClientAlert(message) {
    let el = document.getElementById('client-alert');
    if (!el) {
      el = document.createElement('div');
      el.id = 'client-alert';
      el.className = 'alert';
      el.setAttribute('role', 'alert');
      el.tabIndex = -1;
      const board = $board();
      const main = document.querySelector('main') || document.body;
      if (board && board.parentNode) board.parentNode.insertBefore(el, board);
      else main.insertBefore(el, main.firstChild);
    }
    el.textContent = message;
    el.hidden = false;
    el.focus({ preventScroll: false });
  }
  document.addEventListener('htmx:responseError', (evt) => {
    if (isLiveRequest(evt)) return; // the next live message will try again
    const d = evt.detail;
    const status = d.xhr ? d.xhr.status : 0;
    showClientAlert(status === 403
      ? 'Your session has expired or the form is stale. Reload the page and try again; nothing was changed.'
      : `The server could not do that (error ${status}). Nothing was changed; try again.`);
    restoreAllCards();
  });
  document.addEventListener('htmx:sendError', (evt) => {
    if (isLiveRequest(evt)) return;
    showClientAlert('Could not reach the server. Nothing was changed; check your connection and try again.');
    restoreAllCards();
  });
  let userRequests = 0; // user-initiated requests in flight (not live refreshes)
  let actionFocus = null; // what had focus when the user acted: restored after a delta
  document.addEventListener('htmx:beforeRequest', (evt) => {
    if (isLiveRequest(evt)) return;
    userRequests += 1;
    actionFocus = focusKey(document.activeElement);
    const el = document.getElementById('client-alert');
    if (el) el.hidden = true;
  });
  document.addEventListener('htmx:afterRequest', (evt) => {
    if (isLiveRequest(evt)) return;
    userRequests = Math.max(0, userRequests - 1);
    afterUserActivity();
  });

  /* ---------------- Drag and drop ---------------- */
  let dragging = false;
  let origin = null; // { item, parent, next }

  function putBack(item, parent, next) {
    if (!parent || !parent.isConnected) return;
    if (next && next.parentNode === parent) parent.insertBefore(item, next);
    else parent.appendChild(item);
  }
  function restoreAllCards() {
    document.querySelectorAll('article.card[aria-busy="true"]').forEach((c) => c.removeAttribute('aria-busy'));
  }

  function firePull(card, toStateId) {
    const url = card.dataset.pullUrl;
    if (!url || !hasHtmx()) return;
    card.setAttribute('aria-busy', 'true');
    window.htmx.ajax('POST', url, {
      target: '#' + BOARD_ID,
      swap: 'outerHTML',
      values: { csrf_token: csrfToken(), to_state_id: toStateId },
    });
  }

  function initSortables(root) {
    if (typeof window.Sortable === 'undefined') return;
    const scope = root && root.querySelectorAll ? root : document;
    const zones = Array.from(scope.querySelectorAll('[data-sortable-state]'));
    if (scope.matches && scope.matches('[data-sortable-state]')) zones.push(scope);
    zones.forEach((zone) => {
      if (zone.dataset.sortableBound === '1' && window.Sortable.get(zone)) return; // no double-binding
      zone.dataset.sortableBound = '1';
      window.Sortable.create(zone, {
        group: { name: GROUP, pull: true, put: true },
        sort: false, // order inside a zone is the server's business
        draggable: 'article.card[data-pull-url]',
        filter: 'button, input, select, textarea, label, summary, [data-no-drag]',
        preventOnFilter: false, // let clicks on the card's buttons and links work
        delay: 180, delayOnTouchOnly: true, // phones: a short press starts a drag, a swipe scrolls
        touchStartThreshold: 4,
        animation: 120,
        ghostClass: 'card-ghost',
        chosenClass: 'card-chosen',
        dragClass: 'card-drag',
        onStart(evt) {
          dragging = true;
          origin = { item: evt.item, parent: evt.from, next: evt.item.nextSibling };
          document.body.classList.add('is-dragging');
          evt.from.classList.add('drop-origin');
        },
        onEnd(evt) {
          const item = evt.item;
          const from = evt.from;
          const to = evt.to;
          document.body.classList.remove('is-dragging');
          from.classList.remove('drop-origin');
          // Never keep the DOM move: the server decides and re-renders.
          if (origin && origin.item === item) putBack(item, origin.parent, origin.next);
          origin = null;
          dragging = false;
          const fromState = from.dataset.sortableState;
          const toState = to.dataset.sortableState;
          if (to !== from && toState && toState !== fromState) {
            firePull(item, toState);
          } else {
            afterUserActivity();
          }
        },
      });
    });
  }

  function destroySortable(el) {
    if (typeof window.Sortable === 'undefined' || !el || !el.matches) return;
    if (el.matches('[data-sortable-state]')) {
      const s = window.Sortable.get(el);
      if (s) s.destroy();
      delete el.dataset.sortableBound;
    }
  }
  // htmx fires this for every element it removes (recursively).
  document.addEventListener('htmx:beforeCleanupElement', (evt) => destroySortable(evt.target));

  /* ---------------- Focus after a #board swap ---------------- */
  let pendingFocusRestore = null; // { itemId, name, value, id } for live refreshes

  function focusKey(el) {
    if (!el || el === document.body) return null;
    const board = $board();
    if (!board || !board.contains(el)) return null;
    const card = el.closest('[data-item-id]');
    return {
      id: el.id || null,
      itemId: card ? card.dataset.itemId : null,
      onCard: card === el,
      text: (el.textContent || '').trim().slice(0, 60),
      tag: el.tagName,
    };
  }
  function restoreFocus(key, board) {
    if (!key) return;
    let el = key.id ? document.getElementById(key.id) : null;
    if (!el && key.itemId) {
      const card = board.querySelector(`[data-item-id="${CSS.escape(key.itemId)}"]`);
      if (card) {
        if (key.onCard) el = card;
        else {
          el = Array.from(card.querySelectorAll(key.tag))
            .find((c) => (c.textContent || '').trim().slice(0, 60) === key.text) || card;
        }
      }
    }
    if (el && board.contains(el)) {
      if (!el.matches('a[href], button, input, select, textarea, [tabindex]')) el.tabIndex = -1;
      el.focus({ preventScroll: true });
    }
  }

  const settledXhrs = new WeakSet();
  document.addEventListener('htmx:afterSettle', (evt) => {
    const d = evt.detail || {};
    // Re-initialise drag and drop in whatever was swapped in (idempotent).
    initSortables(evt.target && evt.target.isConnected ? evt.target : document);
    if (!isBoardTarget(evt)) return;
    if (d.xhr) {
      if (settledXhrs.has(d.xhr)) return;
      settledXhrs.add(d.xhr);
    }
    const board = $board();
    if (!board) return;
    if (isLiveRequest(evt)) {
      liveInFlight = false;
      const key = pendingFocusRestore;
      pendingFocusRestore = null;
      restoreFocus(key, board);
    } else {
      const target = board.querySelector('[data-focus-after-swap]') || board.querySelector('[role="alert"]');
      if (target) {
        if (!target.matches('a[href], button, input, select, textarea, [tabindex]')) target.tabIndex = -1;
        target.focus({ preventScroll: true });
        target.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      }
    }
    ensureLive();
    if (refreshPending) scheduleRefresh();
    if (liveDeltas.length) setTimeout(flushDeltas, 0);
  });
  document.addEventListener('htmx:load', (evt) => initSortables(evt.target));

  /* ---------------- Deltas ---------------- */
  // The newest event id an element's rendering read: its own (set when a delta put it there)
  // or the board's (a whole rendering).
  const seenOf = (el) => {
    const board = $board();
    return Number((el && el.dataset && el.dataset.seen) || (board && board.dataset.eventId) || 0);
  };

  // The run's paging links as this page shows it: the delta's links count the cards its
  // rendering showed, the page may show more (Show more) or fewer/more (other deltas).
  function correctMore(slot, run) {
    const shownHere = run ? run.querySelectorAll(':scope > article.card').length : 0;
    const shownThere = Number(slot.dataset.shown || 0);
    if (!run || shownHere === shownThere) return;
    const more = Number(slot.dataset.total || 0) - shownHere;
    const next = slot.querySelector('a.more[hx-get]');
    if (!next) return;
    if (more <= 0) { slot.replaceChildren(); return; }
    const url = next.getAttribute('href').replace(/([?&])offset=\d+/, `$1offset=${shownHere}`);
    next.setAttribute('href', url);
    next.setAttribute('hx-get', url);
    next.textContent = `Show ${more} more`;
    slot.dataset.shown = String(shownHere);
  }

  const cardOf = (itemId) => {
    const board = $board();
    return board ? board.querySelector(`article.card[data-item-id="${CSS.escape(String(itemId))}"]`) : null;
  };

  function place(card, run, afterId) {
    const after = afterId ? cardOf(afterId) : null;
    if (after && after.parentNode === run) { after.after(card); return true; }
    const first = run.querySelector(':scope > article.card');
    const slot = run.querySelector(':scope > .more-slot');
    if (first) run.insertBefore(card, first);
    else if (slot) run.insertBefore(card, slot);
    else run.appendChild(card);
    return !afterId; // its predecessor is not on this page: this copy of the run differs
  }

  function removeCard(card) {
    const prev = card.previousElementSibling;
    if (prev && prev.matches('.alert.inline')) prev.remove(); // a refusal about the old place
    card.remove();
  }

  function parseDelta(html) {
    const tpl = document.createElement('template');
    tpl.innerHTML = html;
    return tpl.content.querySelector('[data-delta]');
  }

  // Applies the parts of a delta (parseDelta's root; its parts move into the page) that are
  // newer than what the page shows. Returns false when the page must reload the board.
  function applyDelta(root) {
    const board = $board();
    if (!board) return true;
    if (!root) return false;
    if ((root.dataset.lane === '1') !== !!board.querySelector('.lane')) return false;
    const focus = focusKey(document.activeElement);
    const seen = Number(root.dataset.seen || 0);
    let whole = true;
    const touched = new Set();
    Array.from(root.querySelectorAll(':scope > [data-card-for]')).forEach((wrapper) => {
      const existing = cardOf(wrapper.dataset.cardFor);
      const card = wrapper.querySelector('article.card');
      // Only what is newer: an equal id is the same change (e.g. the echo of my own action,
      // or a change a refusal's board already shows), so the page keeps its alert and focus.
      if (existing && seenOf(existing) >= seen) return;
      if (card) card.dataset.seen = String(seen);
      if (existing) { touched.add(existing.parentNode); removeCard(existing); }
      if (!card) return;
      const run = document.getElementById(wrapper.dataset.run);
      if (!run || !board.contains(run)) { whole = false; return; }
      if (!place(card, run, wrapper.dataset.after)) whole = false;
      touched.add(run);
      if (hasHtmx()) window.htmx.process(card);
    });
    Array.from(root.children).forEach((head) => {
      if (!head.id || head.hasAttribute('data-card-for')) return;
      const target = document.getElementById(head.id);
      if (!target || (seenOf(target) >= seen && head.id !== 'my-summary')) return;
      if (head.classList.contains('more-slot')) correctMore(head, target.parentNode);
      head.dataset.seen = String(seen);
      target.replaceWith(head);
      if (hasHtmx()) window.htmx.process(head);
    });
    // Runs that lost or gained a card keep their own paging links right.
    touched.forEach((run) => {
      const slot = run && run.querySelector && run.querySelector(':scope > .more-slot');
      if (slot) correctMore(slot, run);
    });
    if (focus && !board.contains(document.activeElement)) restoreFocus(focus, board);
    return whole;
  }

  // An action's answer: the board's refusals are now stale, focus goes back where it was (or
  // to the acted-on card), and a delta the page could not place reloads the board.
  function applyUserDelta(html) {
    const board = $board();
    if (board) board.querySelectorAll('.alert').forEach((el) => el.remove());
    const key = actionFocus;
    actionFocus = null;
    const root = parseDelta(html);
    const acted = root && root.querySelector('[data-card-for] article.card');
    const actedId = acted ? acted.dataset.itemId : null;
    if (!applyDelta(root)) { forceRefresh = true; scheduleRefresh(); }
    const b = $board();
    if (!b) return;
    if (key && key.itemId) restoreFocus(key, b);
    if (!b.contains(document.activeElement) && !document.querySelector('dialog[open]')) {
      const card = actedId && cardOf(actedId);
      if (card) { card.tabIndex = -1; card.focus({ preventScroll: true }); }
    }
    ensureLive();
  }

  const liveDeltas = [];
  function flushDeltas() {
    if (!liveDeltas.length) return;
    if (document.hidden || userIsBusy() || liveInFlight) {
      clearTimeout(busyRetryTimer);
      busyRetryTimer = setTimeout(afterUserActivity, 2000);
      return;
    }
    const pending = liveDeltas.splice(0);
    if (!pending.every((html) => applyDelta(parseDelta(html)))) { forceRefresh = true; scheduleRefresh(); }
  }

  /* ---------------- Drawer ---------------- */
  let drawerOpener = null;
  const drawer = () => document.getElementById('drawer');

  document.addEventListener('click', (evt) => {
    const t = evt.target;
    if (!(t instanceof Element)) return;
    const link = t.closest('[data-drawer]');
    if (link) {
      drawerOpener = link;
      // Cards carry no hx attributes (bytes per card): fetch the href into the drawer here.
      const hasHx = ['hx-get', 'data-hx-get'].some((a) => link.hasAttribute(a));
      if (!hasHx && link.getAttribute('href') && hasHtmx() && drawer()
          && !(evt.metaKey || evt.ctrlKey || evt.shiftKey || evt.altKey || evt.button !== 0)) {
        evt.preventDefault();
        window.htmx.ajax('GET', link.getAttribute('href'), { target: '#drawer-body', swap: 'innerHTML' });
      }
      return;
    }
    const closer = t.closest('[data-drawer-close]');
    if (closer) {
      const dlg = closer.closest('dialog') || drawer();
      if (dlg && dlg.open) { evt.preventDefault(); dlg.close(); }
      return;
    }
    // A click on the backdrop (outside the dialog's box) closes it.
    const dlg = drawer();
    if (dlg && dlg.open && t === dlg) {
      const r = dlg.getBoundingClientRect();
      const inside = evt.clientX >= r.left && evt.clientX <= r.right && evt.clientY >= r.top && evt.clientY <= r.bottom;
      if (!inside) dlg.close();
    }
  });

  document.addEventListener('htmx:afterSwap', (evt) => {
    const d = evt.detail || {};
    const target = d.target || evt.target;
    if (!target || target.id !== 'drawer-body') return;
    const dlg = target.closest('dialog') || drawer();
    if (dlg && !dlg.open && typeof dlg.showModal === 'function') {
      dlg.showModal();
      const auto = target.querySelector('[autofocus], [data-focus-after-swap]')
        || target.querySelector('h1, h2, h3') || dlg.querySelector('[autofocus], h1, h2');
      if (auto) {
        if (!auto.matches('a[href], button, input, select, textarea, [tabindex]')) auto.tabIndex = -1;
        auto.focus();
      }
    }
  });

  // Escape closes a native modal dialog (the "cancel" event); on close, hand focus back.
  document.addEventListener('close', (evt) => {
    const dlg = evt.target;
    if (!(dlg instanceof HTMLDialogElement) || dlg.id !== 'drawer') return;
    const body = document.getElementById('drawer-body');
    if (body) body.replaceChildren();
    if (drawerOpener && drawerOpener.isConnected) drawerOpener.focus();
    else {
      const key = drawerOpener && drawerOpener.closest && drawerOpener.closest('[data-item-id]');
      const b = $board();
      const card = key && b ? b.querySelector(`[data-item-id="${CSS.escape(key.dataset.itemId)}"]`) : null;
      if (card) { card.tabIndex = -1; card.focus(); }
    }
    drawerOpener = null;
  }, true);

  /* ---------------- Shared Block / Send back dialogs ----------------
   * One dialog per board instead of a form per card: the card's link names the item (its
   * aria-label is the dialog's title), the card its id, data-to the states it may go back to. */
  let dialogOpener = null;

  function openActionDialog(link) {
    const dlg = document.getElementById(`${link.dataset.dialog}-dialog`);
    const card = link.closest('[data-item-id]');
    const form = dlg && dlg.querySelector('form[data-action]');
    if (!form || !card || typeof dlg.showModal !== 'function' || !hasHtmx()) return false;
    form.reset();
    form.dataset.url = form.dataset.action.replace('{id}', encodeURIComponent(card.dataset.itemId));
    form.action = form.dataset.url; // a native submit (htmx gone) still posts to the right item
    const title = dlg.querySelector('h2');
    if (title) title.textContent = link.getAttribute('aria-label') || link.textContent;
    const to = form.querySelector('select[name="to_state_id"]');
    if (to) {
      const allowed = (link.dataset.to || '').split(/\s+/).filter(Boolean);
      Array.from(to.options).forEach((o) => {
        const ok = allowed.includes(o.value);
        o.hidden = !ok;
        o.disabled = !ok;
      });
      // The order of data-to is the preference: the nearest earlier state first.
      to.value = allowed.find((id) => to.querySelector(`option[value="${CSS.escape(id)}"]`)) || '';
    }
    dialogOpener = link;
    dlg.showModal();
    const first = form.querySelector('select, input:not([type="hidden"])');
    if (first) first.focus();
    return true;
  }

  document.addEventListener('click', (evt) => {
    const t = evt.target;
    if (!(t instanceof Element)) return;
    const link = t.closest('a[data-dialog]');
    if (link) {
      if (evt.metaKey || evt.ctrlKey || evt.shiftKey || evt.altKey || evt.button !== 0) return;
      if (openActionDialog(link)) evt.preventDefault();
      return;
    }
    const closer = t.closest('[data-dialog-close]');
    if (closer) {
      const dlg = closer.closest('dialog');
      if (dlg && dlg.open) { evt.preventDefault(); dlg.close(); }
      return;
    }
    // A click on the backdrop (outside the dialog's box) closes it.
    if (t instanceof HTMLDialogElement && t.classList.contains('action-dialog') && t.open) {
      const r = t.getBoundingClientRect();
      const inside = evt.clientX >= r.left && evt.clientX <= r.right && evt.clientY >= r.top && evt.clientY <= r.bottom;
      if (!inside) t.close();
    }
  });

  // The cards' buttons submit the board's one form#card-act to their own formaction.
  document.addEventListener('submit', (evt) => {
    const form = evt.target;
    const button = evt.submitter;
    if (!(form instanceof HTMLFormElement) || form.id !== 'card-act' || !hasHtmx()) return;
    const url = button && button.getAttribute('formaction');
    if (!url) return;
    evt.preventDefault();
    window.htmx.ajax('POST', url, { source: button, target: '#' + BOARD_ID, swap: 'outerHTML' });
  });

  document.addEventListener('submit', (evt) => {
    const form = evt.target;
    if (!(form instanceof HTMLFormElement) || !form.matches('dialog.action-dialog form[data-action]')) return;
    if (!form.dataset.url || !hasHtmx()) return; // let the browser post it
    evt.preventDefault();
    const dlg = form.closest('dialog');
    window.htmx.ajax('POST', form.dataset.url, { source: form, target: '#' + BOARD_ID, swap: 'outerHTML' })
      .finally(() => form.reset());
    if (dlg) { dialogOpener = null; dlg.close(); } // the answer's alert or card takes the focus
  });

  document.addEventListener('close', (evt) => {
    const dlg = evt.target;
    if (!(dlg instanceof HTMLDialogElement) || !dlg.classList.contains('action-dialog')) return;
    if (dialogOpener && dialogOpener.isConnected) dialogOpener.focus();
    dialogOpener = null;
    setTimeout(afterUserActivity, 0);
  }, true);

  /* ---------------- Live updates (SSE) ---------------- */
  let source = null;
  let sourceUrl = null;
  let retryTimer = null;
  let retryDelay = 2000;
  let debounceTimer = null;
  let refreshPending = false;
  let newestEventId = 0; // the newest event id the stream announced
  let forceRefresh = false; // after a reconnect: changes may have been missed
  let liveInFlight = false;
  let busyRetryTimer = null;
  let everOpened = false;
  let lostConnection = false;

  function liveAttr(name) {
    const b = $board();
    return (b && b.dataset[name]) || document.body.dataset[name] || null;
  }
  function setStatus(state, text) {
    const el = document.getElementById('live-status');
    if (!el) return;
    if (!el.hasAttribute('role')) el.setAttribute('role', 'status');
    if (el.dataset.state === state) return; // don't re-announce
    el.dataset.state = state;
    el.textContent = text;
  }

  function hasUnsavedInput(form) {
    return Array.from(form.elements).some((f) => {
      if (f instanceof HTMLInputElement) {
        if (f.type === 'checkbox' || f.type === 'radio') return f.checked !== f.defaultChecked;
        if (f.type === 'hidden' || f.type === 'submit' || f.type === 'button') return false;
        return f.value !== f.defaultValue;
      }
      if (f instanceof HTMLTextAreaElement) return f.value !== f.defaultValue;
      if (f instanceof HTMLSelectElement) return Array.from(f.options).some((o) => o.selected !== o.defaultSelected);
      return false;
    });
  }
  function userIsBusy() {
    if (dragging) return true;
    if (document.querySelector('dialog.action-dialog[open]')) return true; // filling a dialog
    const board = $board();
    const a = document.activeElement;
    if (board && a && board.contains(a)) {
      const form = a.closest('form');
      if (form && hasUnsavedInput(form)) return true;
    }
    // A user request is in flight: wait for its response first.
    return userRequests > 0;
  }

  // The board says which event it already shows (data-event-id). The viewer's own action
  // comes back rendered with its event, so the stream's echo of it needs no second refresh
  // (which could also swap the board under the next click).
  function alreadyShown(board) {
    const shown = Number(board.dataset.eventId || 0);
    return shown > 0 && newestEventId <= shown;
  }

  function refreshNow() {
    debounceTimer = null;
    const url = liveAttr('refreshUrl');
    const board = $board();
    if (!url || !board || !hasHtmx()) return;
    if (!forceRefresh && alreadyShown(board) && !userIsBusy()) { refreshPending = false; return; }
    if (document.hidden || userIsBusy()) {
      refreshPending = true;
      // Safety net in case no focus/submit event tells us the user is done.
      clearTimeout(busyRetryTimer);
      busyRetryTimer = setTimeout(afterUserActivity, 2000);
      return;
    }
    if (liveInFlight) { refreshPending = true; return; }
    refreshPending = false;
    forceRefresh = false;
    liveInFlight = true;
    pendingFocusRestore = focusKey(document.activeElement);
    const p = window.htmx.ajax('GET', url, {
      target: '#' + BOARD_ID, swap: 'outerHTML', headers: { [REFRESH_HEADER]: 'live' },
    });
    const done = () => { setTimeout(() => { liveInFlight = false; }, 50); };
    if (p && typeof p.then === 'function') p.then(done, done); else done();
  }
  function scheduleRefresh() {
    refreshPending = true;
    clearTimeout(debounceTimer);
    debounceTimer = setTimeout(refreshNow, DEBOUNCE_MS);
  }
  // Called when the user may have finished what blocked a refresh.
  function afterUserActivity() {
    if (refreshPending) setTimeout(() => { if (refreshPending && !userIsBusy()) scheduleRefresh(); }, 0);
    if (liveDeltas.length) setTimeout(flushDeltas, 0);
  }
  document.addEventListener('focusout', () => setTimeout(afterUserActivity, 0));
  document.addEventListener('submit', () => setTimeout(afterUserActivity, 0));
  document.addEventListener('reset', () => setTimeout(afterUserActivity, 0));
  document.addEventListener('visibilitychange', () => { if (!document.hidden) afterUserActivity(); });

  function connect(url) {
    if (source) source.close();
    clearTimeout(retryTimer);
    sourceUrl = url;
    const es = new EventSource(url, { withCredentials: true });
    source = es;
    const onMessage = (e) => {
      let id = 0;
      try { id = Number(JSON.parse(e.data || '{}').event_id) || 0; } catch (_) { id = 0; }
      // Without an id we cannot tell what changed: refresh whatever the board shows.
      newestEventId = id ? Math.max(newestEventId, id) : Infinity;
      scheduleRefresh();
    };
    es.addEventListener('message', onMessage);
    es.addEventListener('refresh', onMessage);
    es.addEventListener('delta', (e) => {
      if (liveDeltas.length >= 50) { liveDeltas.length = 0; forceRefresh = true; scheduleRefresh(); return; }
      liveDeltas.push(e.data || '');
      flushDeltas();
    });
    (liveAttr('liveEvents') || '').split(',').map((s) => s.trim()).filter(Boolean)
      .forEach((name) => es.addEventListener(name, onMessage));
    es.addEventListener('open', () => {
      retryDelay = 2000;
      setStatus('live', 'Live');
      // Changes may have happened while we were disconnected.
      if (everOpened && lostConnection) { forceRefresh = true; scheduleRefresh(); }
      everOpened = true;
      lostConnection = false;
    });
    es.addEventListener('error', () => {
      if (source !== es) return;
      lostConnection = true;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. HTTP error or wrong content type): retry with backoff.
        setStatus('offline', 'Offline, retrying');
        retryTimer = setTimeout(() => { if (source === es) connect(url); }, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 60000);
      } else {
        setStatus('reconnecting', 'Reconnecting…');
      }
    });
  }
  function ensureLive() {
    if (typeof window.EventSource === 'undefined') return;
    const url = liveAttr('liveUrl');
    if (!url) {
      if (source) { source.close(); source = null; sourceUrl = null; }
      return;
    }
    if (source && sourceUrl === url && source.readyState !== EventSource.CLOSED) return;
    connect(url);
  }
  window.addEventListener('pagehide', () => { if (source) source.close(); });
  window.addEventListener('pageshow', (evt) => { if (evt.persisted) { source = null; ensureLive(); } });

  /* ---------------- Start ---------------- */
  function start() {
    initSortables(document);
    ensureLive();
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
