"""The page's own CSS and script, passed to `launch()` (`css=`, `head=`; Gradio 6 takes them there).

The script is what makes a citation checkable in one click, on any screen:

- **Viewer.** A click, tap-then-button, or Enter on a marker (`a.cite`) asks the server for the document viewer
  through a hidden textbox and button (`#viewer-request`, `#viewer-open`: the only way a page event reaches a
  Gradio handler); the rendering comes back in the hidden `#viewer-data` and `ui.show` puts it in `#viewer-body`
  (see `ui.app` for why not through gr.HTML). The viewer shows in place of the sources; only the viewer's text box
  is scrolled, to the cited sentence, which gets the focus (`#viewer-current`). Back (button or Escape) returns focus to the marker.
  The time from click to focused span is kept in `window.ragUi.lastOpenMs` for `ui.bench_viewer`.
- **Popover** (`#cite-popover`) on hover, keyboard focus and touch tap, with the quoted sentence(s), document and
  section, and on touch a "Show in document" button (a tap must not jump straight away: it is the only way to
  preview on a phone). The marker's own claim (`span.claim`) is highlighted meanwhile.
- **Keyboard.** Tab from the question goes to the newest answer's markers, then on to the sources; Shift+Tab
  goes back the same way.
- **Phone (<= 480 px).** Chat and Sources are two tabs of one pane (`body[data-pane]`), so the sources sit
  beside the chat instead of far below it; opening a citation switches to Sources, Back to Chat. The question box
  is focused only on wider screens, without scrolling, so a phone opens at the title and status.
- **One reset.** "New chat" and the Chatbot's own Clear both run the same server handler (see `ui.app`); here
  they also close the viewer and the popover.
"""

from __future__ import annotations

from ui.viewer import VIEWER_CSS

CSS = """
#cite-popover { position: fixed; z-index: 1000; font-family: var(--font, inherit);
  max-width: min(26rem, calc(100vw - 16px));
  background: var(--background-fill-primary, #fff); color: var(--body-text-color, #111);
  border: 1px solid rgba(100, 116, 139, 0.7); border-radius: 8px; box-shadow: 0 6px 24px rgba(0, 0, 0, 0.18);
  padding: 0.55rem 0.7rem; font-size: 0.88rem; line-height: 1.45; }
#cite-popover[hidden] { display: none; }
#cite-popover .pq { margin: 0 0 0.35rem 0; }
#cite-popover .pw { opacity: 0.8; font-size: 0.8rem; }
#cite-popover button { margin-top: 0.45rem; border: 1px solid rgba(100, 116, 139, 0.7); border-radius: 6px;
  padding: 0.15rem 0.6rem; background: transparent; color: inherit; font: inherit; cursor: pointer; }
a.cite { cursor: pointer; -webkit-tap-highlight-color: rgba(0, 114, 178, 0.2); }
#chat .message, #chat .message-row, #chat button.message { -webkit-tap-highlight-color: transparent; }
a.cite:focus-visible { outline: 3px solid rgb(var(--c, 0, 114, 178)); outline-offset: 2px; }
.claim.active { background: rgba(var(--c), 0.16); text-decoration: underline 2px rgb(var(--c));
  text-underline-offset: 3px; border-radius: 3px; }
#pane-tabs { display: none; }
/* The script's hidden plumbing: never laid out (a 1 MB value in a laid-out textarea would cost a layout). */
#viewer-data, #viewer-request, #viewer-open { display: none !important; }
#status-line { position: relative; z-index: 1; }
/* Toasts (warnings) at the bottom, so they never cover the title and status line. */
.toast-wrap { top: auto !important; bottom: 16px !important; }
#chat button.example { border: 1px solid rgba(100, 116, 139, 0.7) !important; border-radius: 8px !important;
  background: var(--button-secondary-background-fill, transparent) !important; cursor: pointer; }
#chat button.example:hover { border-color: rgb(0, 114, 178) !important; }
#chat .placeholder-content, #chat .placeholder { white-space: normal; overflow: visible; }
#eval-failures table { table-layout: fixed; width: 100% !important; }
#eval-failures td, #eval-failures th { white-space: normal !important; overflow-wrap: anywhere; }
#eval-failures .table-wrap, #eval-failures { max-width: 100%; overflow-x: hidden; }
@media (max-width: 480px) {
  /* A tab bar fixed at the bottom (thumb reach); the page keeps room for it, so it covers nothing. */
  #pane-tabs { display: block; position: fixed; left: 0; right: 0; bottom: 0; z-index: 50; margin: 0 !important;
    padding: 0.4rem 0.6rem !important; background: var(--background-fill-primary, #fff);
    border-top: 1px solid rgba(100, 116, 139, 0.5); }
  #pane-tabs [role="tablist"] { display: flex !important; gap: 0.5rem; }
  #pane-tabs button { flex: 1; border: 1px solid rgba(100, 116, 139, 0.7); border-radius: 8px;
    padding: 0.45rem; background: transparent; color: inherit; font: inherit; font-weight: 600; }
  #pane-tabs button[aria-selected="true"] { background: rgba(0, 114, 178, 0.16); border-color: rgb(0, 114, 178); }
  #chat { height: auto !important; min-height: 18rem; }
  #chat .bubble-wrap, #chat [role="log"] { max-height: none !important; height: auto !important;
    overflow: visible !important; }
  #sources { max-height: none !important; overflow: visible !important; }
  #sources .html-container, #sources > div { max-height: none !important; overflow: visible !important; }
}
""" + VIEWER_CSS

# Runs once per page (in <head>): everything is delegated from `document`, so Gradio re-rendering the chat or the
# panels never loses a handler.
HEAD = """
<style>
/* Rules that depend on the page state the script keeps on <body> (data-view, data-pane). They live here, not in
   launch(css=...): Gradio rewrites those rules under its container's classes (inside @media it keeps only the
   rewritten copy), and a "body[...] #x" selector under ".gradio-container .contain" never matches. */
body:not([data-view="viewer"]) #viewer { display: none !important; }
body[data-view="viewer"] #sources { display: none !important; }
@media (max-width: 480px) {
  body:not([data-pane="sources"]) #sources-col { display: none !important; }
  body[data-pane="sources"] #chat-col { display: none !important; }
  body { padding-bottom: 3.6rem; }
}
</style>
<script>
(() => {
  if (window.ragUi) return;
  const ui = window.ragUi = { lastOpenMs: null, opened: 0 };
  const phone = () => window.matchMedia('(max-width: 480px)').matches;
  let seq = 0, pending = 0, openStart = 0, lastOpen = null, returnId = null, touch = false;
  let pop = null, popFor = null, hideTimer = null;

  function popover() {
    if (!pop) {
      pop = document.createElement('div');
      pop.id = 'cite-popover'; pop.setAttribute('role', 'tooltip'); pop.hidden = true;
      const root = document.querySelector('.gradio-container');
      if (root) pop.style.fontFamily = getComputedStyle(root).fontFamily;
      pop.addEventListener('mouseenter', () => clearTimeout(hideTimer));
      pop.addEventListener('mouseleave', () => scheduleHide());
      document.body.appendChild(pop);
    }
    return pop;
  }
  // The sanitizer keeps only id, class, href, style and title on chat HTML (ui.render.chip): unpack them.
  const SEP = '\u241e';
  function prepare(chip) {
    const m = /^cite-(\d+)-(\d+)$/.exec(chip.id || '');
    if (!m) return;
    chip.dataset.turn = m[1]; chip.dataset.k = m[2];
    chip.dataset.n = (chip.textContent || '').replace(/[^0-9]/g, '');
    const rgb = /rgb\(([^)]*)\)/.exec(chip.getAttribute('style') || '');
    if (rgb) { chip.dataset.rgb = rgb[1]; chip.style.setProperty('--c', rgb[1]); }
    const title = chip.getAttribute('title');
    if (title !== null) {
      const [label, where, quote] = title.split(SEP);
      chip.setAttribute('aria-label', label || ('Citation ' + chip.dataset.n));
      chip.dataset.where = where || ''; chip.dataset.quote = quote || '';
      chip.removeAttribute('title');
    } else if (!chip.getAttribute('aria-label')) {
      chip.setAttribute('aria-label', 'Citation ' + chip.dataset.n);
    }
    chip.dataset.ready = '1';
  }
  function prepareAll() { document.querySelectorAll('#chat a.cite:not([data-ready])').forEach(prepare); }
  ui.prepareAll = prepareAll;
  function claimOf(chip) {  // span.claim "claim-<turn>-<k of the first of the adjacent chips>"
    let first = chip;
    for (let p = chip.previousElementSibling; p && p.matches('a.cite'); p = p.previousElementSibling) first = p;
    const m = /^cite-(\d+)-(\d+)$/.exec(first.id || '');
    return m ? document.getElementById('claim-' + m[1] + '-' + m[2]) : null;
  }
  function showPop(chip, tapped) {
    clearTimeout(hideTimer);
    prepare(chip);
    const p = popover();
    if (popFor && popFor !== chip) unmark(popFor);
    p.textContent = '';
    const q = document.createElement('p'); q.className = 'pq';
    q.textContent = chip.dataset.quote ? '“' + chip.dataset.quote + '”' : 'Passage ' + chip.dataset.n;
    const w = document.createElement('p'); w.className = 'pw';
    w.textContent = '[' + chip.dataset.n + '] ' + (chip.dataset.where || '');
    p.append(q, w);
    if (tapped) {
      const b = document.createElement('button'); b.type = 'button'; b.textContent = 'Show in document';
      b.dataset.cite = 'c:' + chip.dataset.turn + ':' + chip.dataset.k; b.dataset.return = chip.id;
      p.append(b);
    }
    p.hidden = false;
    popFor = chip;
    placePop();
    chip.setAttribute('aria-describedby', 'cite-popover');
    const claim = claimOf(chip);
    if (claim) { claim.style.setProperty('--c', chip.dataset.rgb || '0, 114, 178'); claim.classList.add('active'); }
  }
  function placePop() {  // position: fixed beside the chip; follows it on scroll, hides when it leaves the screen
    if (!pop || pop.hidden || !popFor) return;
    const r = popFor.getBoundingClientRect();
    if (r.bottom < 0 || r.top > window.innerHeight || !popFor.isConnected) { hidePop(); return; }
    const width = Math.min(pop.offsetWidth, window.innerWidth - 16);
    pop.style.left = Math.max(8, Math.min(r.left, window.innerWidth - width - 8)) + 'px';
    const below = r.bottom + 6, h = pop.offsetHeight;
    pop.style.top = ((below + h > window.innerHeight && r.top - h - 6 > 0) ? r.top - h - 6 : below) + 'px';
  }
  function unmark(chip) {
    const claim = claimOf(chip);
    if (claim) claim.classList.remove('active');
    chip.removeAttribute('aria-describedby');
  }
  function hidePop() {
    clearTimeout(hideTimer);
    if (pop) pop.hidden = true;
    if (popFor) unmark(popFor);
    popFor = null;
  }
  function scheduleHide() { clearTimeout(hideTimer); hideTimer = setTimeout(hidePop, 200); }
  ui.hidePopover = hidePop;

  function setPane(which) {
    document.body.dataset.pane = which;
    document.querySelectorAll('#pane-tabs [data-pane-target]').forEach(b =>
      b.setAttribute('aria-selected', String(b.dataset.paneTarget === which)));
  }
  function request(value) {
    const box = document.querySelector('#viewer-request textarea, #viewer-request input');
    const btn = document.querySelector('#viewer-open');
    if (!box || !btn) return false;
    pending = ++seq;
    box.value = value + '|' + pending;
    box.dispatchEvent(new Event('input', { bubbles: true }));
    setTimeout(() => btn.click(), 0);
    return true;
  }
  function open(req, ret) {
    hidePop();
    returnId = ret || returnId;
    openStart = performance.now();
    document.body.dataset.view = 'viewer';
    if (phone()) setPane('sources');
    request(req);
  }
  function back() {
    document.body.dataset.view = 'sources';
    if (phone()) setPane('chat');
    const el = returnId && document.getElementById(returnId);
    if (el) { el.focus({ preventScroll: true }); el.scrollIntoView({ block: 'nearest' }); }
  }
  function showSources() { hidePop(); document.body.dataset.view = 'sources'; }
  ui.open = open; ui.back = back;
  ui.reset = () => {
    hidePop(); document.body.dataset.view = 'sources'; if (phone()) setPane('chat');
    const body = document.getElementById('viewer-body'); if (body) body.textContent = '';
  };

  function arrived(v) {  // a rendering of the viewer arrived: scroll its text box to the span, focus it
    const id = v.dataset.openId;
    if (!id || id === lastOpen || Number(id) !== pending) return;
    lastOpen = id;
    const box = v.querySelector('.vtext'), cur = v.querySelector('#viewer-current');
    if (document.body.dataset.view !== 'viewer') return;
    if (phone()) {
      const top = v.getBoundingClientRect().top + window.scrollY - 48;
      window.scrollTo(0, Math.max(0, top));
    }
    // Scroll only the viewer's own text box (never the window) so the span sits a third of the way down. Blocks
    // far from the screen are laid out lazily (ui.viewer.render_text), so the blocks that come into view can
    // change height: place it, let the browser lay them out, place it again.
    const place = () => {
      if (!box || !cur) return;
      const delta = cur.getBoundingClientRect().top - box.getBoundingClientRect().top - box.clientHeight / 3;
      box.scrollTop = Math.max(0, box.scrollTop + delta);
    };
    place();
    requestAnimationFrame(() => {
      place();
      if (cur) cur.focus({ preventScroll: true });
      // One more frame: blocks that came into view are laid out by now; correct any shift they caused.
      requestAnimationFrame(() => { place(); ui.lastOpenMs = performance.now() - openStart; ui.opened += 1; });
    });
  }
  ui.show = html => {  // a rendering from the server (via the hidden #viewer-data): put it in place
    const body = document.getElementById('viewer-body');
    if (!body || typeof html !== 'string') return;
    body.innerHTML = html;
    const v = body.querySelector('.viewer[data-open-id]');
    if (v) arrived(v);
  };
  new MutationObserver(() => prepareAll()).observe(document.documentElement, { childList: true, subtree: true });

  document.addEventListener('pointerdown', e => { touch = e.pointerType === 'touch'; }, true);
  document.addEventListener('scroll', () => placePop(), true);
  document.addEventListener('click', e => {
    const t = e.target instanceof Element ? e.target : null;
    if (!t) return;
    const chip = t.closest('a.cite');
    if (chip) {
      e.preventDefault(); e.stopPropagation(); prepare(chip);
      if (touch && popFor !== chip) { showPop(chip, true); return; }
      open('c:' + chip.dataset.turn + ':' + chip.dataset.k, chip.id);
      return;
    }
    const act = t.closest('[data-cite], [data-action]');
    if (act && act.closest('#viewer, #sources, #cite-popover')) {
      e.preventDefault(); e.stopPropagation();
      if (act.dataset.action === 'back') back(); else open(act.dataset.cite, act.dataset.return);
      return;
    }
    const tab = t.closest('#pane-tabs [data-pane-target]');
    if (tab) { setPane(tab.dataset.paneTarget); return; }
    const clear = '#new-chat, #chat button[aria-label="Clear"], #chat button[title="Clear"]';
    if (t.closest(clear)) ui.reset();
    else if (t.closest('#ask, #chat button.example')) showSources();  // a new answer: show its sources
    if (pop && !pop.hidden && !t.closest('#cite-popover')) hidePop();
  }, true);

  document.addEventListener('mouseover', e => {
    const chip = e.target instanceof Element && e.target.closest('a.cite');
    if (chip && !touch) showPop(chip, false);
  });
  document.addEventListener('mouseout', e => {
    const chip = e.target instanceof Element && e.target.closest('a.cite');
    if (chip && !touch) scheduleHide();
  });
  document.addEventListener('focusin', e => {
    const t = e.target instanceof Element ? e.target : null;
    if (t && t.matches('a.cite')) { if (!touch) showPop(t, false); }  // a tap's focus: the click decides
    else if (t && !t.closest('#cite-popover') && popFor) hidePop();
  });

  function focusables(root) {
    return root ? [...root.querySelectorAll('button:not([disabled]), a[href], [tabindex]:not([tabindex="-1"])')]
      .filter(el => el.offsetParent !== null) : [];
  }
  function newestChips() {
    const bots = document.querySelectorAll("#chat [data-testid='bot']");
    for (let i = bots.length - 1; i >= 0; i--) {
      const chips = bots[i].querySelectorAll('a.cite');
      if (chips.length) return [...chips];
    }
    return [];
  }
  document.addEventListener('keydown', e => {
    touch = false;
    const t = e.target instanceof Element ? e.target : null;
    if (e.key === 'Enter' && !e.shiftKey && t && t.matches('#question textarea')) showSources();
    if (e.key === 'Escape') {
      if (document.body.dataset.view === 'viewer') { e.preventDefault(); back(); return; }
      if (pop && !pop.hidden) { hidePop(); return; }
    }
    if (e.key !== 'Tab' || e.altKey || e.ctrlKey || e.metaKey || !t) return;
    if (t.matches('#question textarea') && !e.shiftKey) {
      const chips = newestChips();
      if (chips.length) { e.preventDefault(); chips[0].focus(); }
      return;
    }
    if (e.shiftKey && t.closest('#sources, #viewer')) {  // back from the first of the sources to the markers
      const panel = t.closest('#sources, #viewer');
      const chips = newestChips();
      if (chips.length && focusables(panel)[0] === t) {
        e.preventDefault();
        if (phone()) setPane('chat');
        chips[chips.length - 1].focus();
      }
      return;
    }
    if (t.matches('a.cite')) {
      const bot = t.closest("[data-testid='bot']");
      const list = bot ? [...bot.querySelectorAll('a.cite')] : [t];
      const i = list.indexOf(t);
      e.preventDefault();
      if (e.shiftKey) {
        if (i > 0) list[i - 1].focus();
        else { const q = document.querySelector('#question textarea'); if (q) q.focus(); }
      } else if (i < list.length - 1) list[i + 1].focus();
      else {
        if (phone()) setPane('sources');
        const panel = document.body.dataset.view === 'viewer' ? document.querySelector('#viewer')
          : document.querySelector('#sources');
        const next = focusables(panel)[0];
        if (next) next.focus();
      }
    }
  });

  function ready() {
    if (!document.body.dataset.view) document.body.dataset.view = 'sources';
    if (!document.body.dataset.pane) setPane('chat');
    const sources = document.querySelector('#sources');
    const q = document.querySelector('#question textarea');
    if (!sources || !q) { setTimeout(ready, 100); return; }
    // The hidden request box and button are the script's, not the reader's: out of the tab order and unspoken.
    document.querySelectorAll('#viewer-request, #viewer-data, #viewer-open')
      .forEach(el => el.setAttribute('aria-hidden', 'true'));
    document.querySelectorAll('#viewer-request textarea, #viewer-request input, #viewer-data textarea, #viewer-open')
      .forEach(el => el.setAttribute('tabindex', '-1'));
    sources.setAttribute('aria-live', 'polite');
    sources.setAttribute('role', 'region');
    sources.setAttribute('aria-label', 'Sources');
    if (!q.getAttribute('aria-label')) q.setAttribute('aria-label', 'Your question about the documents');
    if (!phone() && document.activeElement === document.body) q.focus({ preventScroll: true });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', ready); else ready();
})();
</script>
"""
