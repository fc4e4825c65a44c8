// liveshtr control page. Plain ES2020, no build step, no dependencies.
//
// Every control is generated from the parameter table the server sends in its full state, so a new parameter
// shows up without touching this file. The server is the single source of truth: the page sends what the
// performer does and draws what the server broadcasts back (the applied, clamped values), except for a control
// the performer is holding right now, whose echoes are ignored so the control does not fight the hand.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...kids) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...kids);
    return node;
  };

  const MAIN_FADERS = ['temperature', 'gain', 'mix', 'drift']; // shown first, in this order
  const SETTLE_MS = 300; // after a touch, echoes of older in-flight values are ignored this long
  const RETRY_MS = [500, 5000]; // reconnect backoff, doubling from the first to the second

  // ---- state ---------------------------------------------------------------------------------------------
  const app = {
    params: [], byName: {}, // the server's table, as sent, and by name
    values: {}, // latest values from the server (never the page's own guesses)
    spectrum: { bands: 96, low_hz: 30, high_hz: 12000, floor_db: -100 }, telemetryHz: 20,
    tableSig: '', // to rebuild the controls only when the table itself changes
  };
  const pub = (window.liveshtr = { state: app.values, telemetryCount: 0, socket: null });

  // A "key" names one number: "gain" for a scalar, "latent:3" for one dimension of a vector.
  const keyOf = (name, index) => (index == null ? name : `${name}:${index}`);
  const splitKey = (key) => {
    const [name, i] = key.split(':');
    return [name, i == null ? null : Number(i)];
  };
  const serverValue = (key) => {
    const [name, i] = splitKey(key);
    const v = app.values[name];
    return i == null ? (Array.isArray(v) ? v[0] : v) : Array.isArray(v) ? v[i] : v;
  };

  // ---- holding: don't fight the user ---------------------------------------------------------------------
  const grabbed = new Map(); // key -> number of pointers holding it
  const settleUntil = new Map(); // key -> performance.now() until which server echoes are ignored
  const local = new Map(); // key -> the value the performer last set
  const pointerKeys = new Map(); // pointerId -> Set of keys that pointer holds

  const isHeld = (key) => (grabbed.get(key) || 0) > 0 || (settleUntil.get(key) || 0) > performance.now();
  const shown = (key) => (isHeld(key) && local.has(key) ? local.get(key) : serverValue(key));

  function touch(key) {
    settleUntil.set(key, performance.now() + SETTLE_MS);
    // When the hold runs out, show whatever the server says now (its echo may have been ignored meanwhile).
    setTimeout(() => isHeld(key) || render(key), SETTLE_MS + 20);
  }

  function grabPointer(pointerId, keys) {
    const held = pointerKeys.get(pointerId) || new Set();
    for (const key of keys) {
      if (held.has(key)) continue;
      held.add(key);
      local.delete(key); // a tap that moves nothing must not resend an old value on release
      grabbed.set(key, (grabbed.get(key) || 0) + 1);
    }
    pointerKeys.set(pointerId, held);
  }

  function releasePointer(e) {
    const held = pointerKeys.get(e.pointerId) || [];
    pointerKeys.delete(e.pointerId);
    for (const key of held) {
      if (grabbed.get(key) > 1) grabbed.set(key, grabbed.get(key) - 1);
      else grabbed.delete(key);
      touch(key);
      if (local.has(key)) sendNow(key, setMessage(key, local.get(key))); // the final value, always
    }
  }
  window.addEventListener('pointerup', releasePointer);
  window.addEventListener('pointercancel', releasePointer);

  // ---- views: everything that draws a key ----------------------------------------------------------------
  const views = new Map(); // key -> [fn(value)]
  const addView = (key, fn) => (views.get(key) || views.set(key, []).get(key)).push(fn);

  function render(key) {
    const v = shown(key);
    if (v == null) return;
    for (const fn of views.get(key) || []) fn(v);
    if (key.startsWith(pad.param + ':')) renderPad();
  }
  const renderAll = () => { for (const key of views.keys()) render(key); renderPad(); };

  // The performer moved something: show it everywhere at once, send it (coalesced unless `now`), hold off
  // echoes. A held key set to the value it already has sends nothing (the pad moving along one axis only).
  function userSet(key, value, now = false) {
    const same = !now && grabbed.get(key) && local.get(key) === value;
    local.set(key, value);
    touch(key);
    render(key);
    if (now) sendNow(key, setMessage(key, value));
    else if (!same) queue(key, setMessage(key, value));
  }

  // ---- sending, at most one message per key per animation frame ------------------------------------------
  const pending = new Map();
  let flushFrame = 0, flushTimer = 0; // both 0 when no flush is scheduled

  function setMessage(key, value) {
    const [name, index] = splitKey(key);
    value = Math.round(value * 1e5) / 1e5; // pointer maths leaves float dust; 5 decimals is plenty
    return index == null ? { type: 'set', name, value } : { type: 'set', name, index, value };
  }

  function queue(key, msg) {
    pending.set(key, msg);
    if (flushFrame) return;
    flushFrame = requestAnimationFrame(flush);
    flushTimer = setTimeout(flush, 100); // rAF stops in a background tab; still deliver the last value
  }

  function flush() {
    cancelAnimationFrame(flushFrame);
    clearTimeout(flushTimer);
    flushFrame = flushTimer = 0;
    for (const msg of pending.values()) send(msg);
    pending.clear();
  }

  const sendNow = (key, msg) => { pending.delete(key); send(msg); };

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
    else toast('not connected: ' + (msg.name || msg.type) + ' not sent');
  }

  const action = (name) => send({ type: 'action', name });

  // ---- number formatting ---------------------------------------------------------------------------------
  // Digits by range: drift (0..0.999) needs three, latent (-4..4) two. Bipolar values carry their sign.
  const fmtValue = (p, v) => {
    const span = Math.abs((p.max ?? 1) - (p.min ?? 0));
    const s = Number(v).toFixed(span <= 1.5 ? 3 : span <= 20 ? 2 : 1);
    return p.min < 0 && v > 0 ? '+' + s : s;
  };
  const pct = (p, v) => (100 * (v - p.min)) / (p.max - p.min || 1);

  // ---- sliders -------------------------------------------------------------------------------------------
  // One range input for one key. Bipolar ranges (-4..4) fill from zero, the others from the bottom.
  function makeSlider(p, index, vertical, readout) {
    const key = keyOf(p.name, index);
    const input = el('input', {
      type: 'range', min: String(p.min), max: String(p.max), step: 'any',
      className: 'slider ' + (vertical ? 'vertical' : 'horizontal'),
      title: p.doc || p.name,
    });
    input.dataset.param = p.name;
    if (index != null) input.dataset.index = String(index);
    input.setAttribute('aria-label', index == null ? p.name : `${p.name} ${index}`);
    const zero = p.min < 0 && p.max > 0 ? pct(p, 0) : 0;

    input.addEventListener('input', () => userSet(key, Number(input.value))); // continuous, keyboard too
    input.addEventListener('pointerdown', (e) => grabPointer(e.pointerId, [key]));
    const toDefault = () => userSet(key, p.default, true);
    input.addEventListener('dblclick', toDefault);
    onDoubleTap(input, toDefault); // touch screens don't reliably send dblclick

    addView(key, (v) => {
      input.value = String(v); // also while held: the pad may be moving this same dimension
      const at = Math.min(100, Math.max(0, pct(p, v)));
      input.style.setProperty('--a', Math.min(at, zero) + '%');
      input.style.setProperty('--b', Math.max(at, zero) + '%');
      if (readout) readout.textContent = fmtValue(p, v);
    });
    return input;
  }

  function onDoubleTap(node, fn) {
    let last = 0;
    node.addEventListener('pointerup', (e) => {
      if (e.pointerType !== 'touch') return;
      const now = performance.now();
      if (now - last < 320) { fn(); last = 0; } else last = now;
    });
  }

  // A big vertical fader with its value above and its name below.
  function makeFader(p, index, label, small) {
    const readout = el('output', { className: 'readout' });
    const input = makeSlider(p, index, true, readout);
    const box = el('div', { className: 'fader' + (small ? ' small' : ''), title: p.doc || p.name },
      readout, el('div', { className: 'fader-slot' }, input), el('span', { className: 'fader-name' }, label));
    box.dataset.fader = keyOf(p.name, index);
    if (app.midi) box.append(makeLearn(p, index));
    return box;
  }

  // ---- MIDI learn: the next controller moved drives this control ----------------------------------------
  // The server binds it (serve --midi); the page asks how it went until nothing is being learned any more.
  let learnPoll = 0;
  function makeLearn(p, index) {
    const key = keyOf(p.name, index);
    const b = el('button', { type: 'button', className: 'learn', textContent: 'learn',
      title: `MIDI learn: move a controller to drive ${index == null ? p.name : `${p.name} ${index}`}` });
    b.dataset.learn = key;
    b.addEventListener('click', () => {
      const on = app.midi && app.midi.learning === learnName(key);
      send(on ? { type: 'midi', action: 'cancel' } : { type: 'midi', action: 'learn', name: p.name, index });
    });
    return b;
  }
  const learnName = (key) => key.replace(':', '/');
  function onMidi(m) {
    const before = app.midi && app.midi.learning;
    app.midi = m;
    pub.midi = m;
    for (const b of document.querySelectorAll('button.learn')) {
      b.classList.toggle('on', learnName(b.dataset.learn) === m.learning);
    }
    clearInterval(learnPoll);
    if (m.learning) learnPoll = setInterval(() => send({ type: 'midi', action: 'get' }), 300);
    else if (before && m.learned) toast(`MIDI ${m.learned}`);
  }

  // ---- scenes: save the controls under a name, recall (morphing over the seconds), delete --------------------
  let armedDelete = null; // the scene whose × was pressed once: a second press deletes it
  function onScenes(names) {
    app.scenes = names;
    pub.scenes = names;
    $('scenes').hidden = !Array.isArray(names);
    const list = $('scene-list');
    list.replaceChildren();
    for (const name of names || []) {
      const recall = el('button', { type: 'button', className: 'scene', textContent: name, title: `recall ${name}` });
      recall.dataset.scene = name;
      recall.addEventListener('click', () => {
        const seconds = Math.max(0, Math.min(600, Number($('scene-seconds').value) || 0));
        send({ type: 'scene', action: 'recall', name, seconds });
        restartAnimation(recall, 'flash');
      });
      const del = el('button', { type: 'button', className: 'scene-delete', textContent: '×', title: `delete ${name} (press twice)` });
      del.dataset.deleteScene = name;
      del.addEventListener('click', () => {
        if (armedDelete === name) { send({ type: 'scene', action: 'delete', name }); armedDelete = null; return; }
        armedDelete = name;
        for (const d of list.querySelectorAll('.scene-delete')) d.classList.toggle('armed', d === del);
      });
      list.append(el('span', { className: 'scene-item' }, recall, del));
    }
  }
  // ---- the set: one button per model; a click crossfades to it (the table and faders follow) ---------------
  function onModels(models) {
    app.models = models;
    pub.models = models;
    $('models').hidden = !Array.isArray(models) || models.length < 2;
    const list = $('model-list');
    list.replaceChildren();
    for (const m of models || []) {
      const b = el('button', {
        type: 'button', className: 'model-button' + (m.playing ? ' playing' : ''), textContent: `${m.index} ${m.name}`,
        title: `${m.path}: latent ${m.latent_dim}, ${m.samplerate / 1000} kHz` });
      b.dataset.model = String(m.index);
      b.setAttribute('aria-pressed', String(!!m.playing));
      b.addEventListener('click', () => {
        const seconds = Math.max(0, Math.min(60, Number($('model-seconds').value) || 0));
        send({ type: 'model', model: m.index, seconds });
        restartAnimation(b, 'flash');
      });
      list.append(b);
    }
  }

  // ---- training beside the set: a bar (stage, epoch, held-out loss, ETA, the model playing), hold/back/stop --
  const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
  function onLearn(state) {
    app.learn = state;
    pub.learn = state;
    $('learn-progress').hidden = !state;
    if (!state) { $('learn-stage').textContent = ''; return; }
    const fraction = Math.max(0, Math.min(1, Number(state.fraction) || 0));
    $('learn-fill').style.transform = `scaleX(${fraction})`;
    $('learn-bar').setAttribute('aria-valuenow', String(Math.round(fraction * 100)));
    const songs = (state.songs || []).map((s) => s.split('/').pop()).join(', ');
    $('learn-stage').textContent = `${songs}: ${state.stage}`;
    const parts = [];
    if (state.epochs) parts.push(`epoch ${state.epoch}/${state.epochs}`);
    if (Number.isFinite(state.val)) parts.push(`held-out ${state.val.toFixed(3)}`);
    if (state.running && Number.isFinite(state.eta_s)) parts.push(`ETA ${clock(state.eta_s)}`);
    parts.push(`${(state.loaded || []).length} model(s) in`);
    if (state.playing) parts.push(`playing ${state.playing}`);
    if (state.error) parts.push(state.error);
    $('learn-info').textContent = parts.join(' · ');
    $('learn-hold').setAttribute('aria-pressed', String(!!state.held));
    $('learn-hold').textContent = state.held ? 'held' : 'hold';
    $('learn-stop').disabled = !state.running;
  }
  $('learn-hold').addEventListener('click', () => send({ type: 'learn', action: 'hold', value: app.learn && app.learn.held ? 0 : 1 }));
  $('learn-back').addEventListener('click', () => send({ type: 'learn', action: 'back' }));
  $('learn-stop').addEventListener('click', () => send({ type: 'learn', action: 'stop' }));
  $('learn-start').addEventListener('click', () => {
    const song = $('learn-song').value.trim();
    if (song) send({ type: 'learn', action: 'start', songs: [song] });
  });

  // ---- recording: one button starts and stops takes (serve --record DIR) ---------------------------------
  function onRecord(r) {
    app.record = r;
    pub.record = r;
    const b = $('record');
    b.hidden = !r;
    if (!r) return;
    b.classList.toggle('on', !!r.recording);
    b.setAttribute('aria-pressed', String(!!r.recording));
    $('record-label').textContent = r.recording ? `recording take ${r.takes}` : 'rec';
    b.title = `takes go to ${r.folder}`;
  }
  $('record').addEventListener('click', () =>
    send({ type: 'record', action: app.record && app.record.recording ? 'stop' : 'start' }));

  function saveScene() {
    const name = $('scene-name').value.trim();
    if (!name) { toast('name the scene first'); return; }
    send({ type: 'scene', action: 'save', name });
    $('scene-name').value = '';
  }
  $('scene-save').addEventListener('click', saveScene);
  $('scene-name').addEventListener('keydown', (e) => { if (e.key === 'Enter') saveScene(); }); // Esc still panics

  // ---- building the surface from the table ---------------------------------------------------------------
  const isVector = (p) => !p.action && p.size > 1;
  const isToggle = (p) => !p.action && p.size === 1 && p.name === 'freeze' && p.min === 0 && p.max === 1;
  const isPrime = (p) => !p.action && p.size === 1 && p.name === 'prime';

  // Long names ("temperature") shrink until they fit their fader (plus the gap): fonts differ a lot per OS.
  function fitNames() {
    for (const n of $('faders').querySelectorAll('.fader-name')) {
      n.style.fontSize = '';
      let size = parseFloat(getComputedStyle(n).fontSize);
      while (n.scrollWidth > n.parentElement.clientWidth + 8 && size > 9) n.style.fontSize = `${(size -= 0.5)}px`;
    }
  }
  new ResizeObserver(fitNames).observe($('faders'));
  const rank = (p) => (MAIN_FADERS.includes(p.name) ? MAIN_FADERS.indexOf(p.name) : MAIN_FADERS.length);

  function build() {
    views.clear();
    const [faders, buttons, tabs, banks, primeSlot] = ['faders', 'buttons', 'vec-tabs', 'vec-banks', 'prime-slot'].map($);
    for (const node of [faders, buttons, tabs, banks, primeSlot]) node.replaceChildren();

    // Scalars: main faders first in their fixed order, then any other scalar in table order.
    const scalars = app.params.filter((p) => !p.action && p.size === 1 && !isToggle(p) && !isPrime(p));
    scalars.sort((a, b) => rank(a) - rank(b));
    for (const p of scalars) faders.append(makeFader(p, null, p.name));
    faders.style.setProperty('--count', String(scalars.length));
    fitNames();

    // Prime: the horizontal scrub bar under the spectrogram.
    const prime = app.params.find(isPrime);
    $('prime-row').hidden = !prime;
    if (prime) {
      const input = makeSlider(prime, null, false, $('prime-value'));
      input.id = 'prime-input';
      input.classList.add('scrub');
      primeSlot.append(input);
    }

    // Vectors: one bank per vector, behind tabs (the first one, "latent", is shown).
    const vectors = app.params.filter(isVector);
    vectors.sort((a, b) => (a.name === 'latent' ? -1 : b.name === 'latent' ? 1 : 0));
    for (const p of vectors) {
      const tab = el('button', { type: 'button', className: 'tab', textContent: p.name, title: p.doc || '' });
      tab.setAttribute('role', 'tab');
      tab.dataset.tab = p.name;
      tab.addEventListener('click', () => showBank(p.name));
      tabs.append(tab);
      const bank = el('div', { className: 'bank', hidden: true });
      bank.dataset.bank = p.name;
      const rows = Math.ceil(p.size / 12); // a big latent wraps onto rows of at most 12 faders
      bank.style.setProperty('--cols', String(Math.ceil(p.size / rows)));
      for (let i = 0; i < p.size; i++) bank.append(makeFader(p, i, String(i), true));
      banks.append(bank);
    }

    // Buttons: the freeze toggle, then the actions, panic last (and biggest).
    const toggles = app.params.filter(isToggle);
    const actions = app.params.filter((p) => p.action);
    actions.sort((a, b) => (a.name === 'panic') - (b.name === 'panic'));
    for (const p of toggles) buttons.append(makeToggle(p));
    for (const p of actions) buttons.append(makeAction(p));

    buildPad(vectors);
    showBank(vectors.length ? (vectors.find((p) => p.name === pad.param) || vectors[0]).name : null);
  }

  // "centre" puts every dimension of the shown vector back to its default, in one message.
  let shownBank = null;
  $('vec-centre').addEventListener('click', () => {
    const p = app.byName[shownBank];
    if (!p) return;
    for (let i = 0; i < p.size; i++) {
      const key = keyOf(p.name, i);
      local.set(key, p.default);
      pending.delete(key); // a queued drag value must not land after the reset
      touch(key);
      render(key);
    }
    send({ type: 'set', name: p.name, value: p.default }); // one number for all dimensions
  });

  function showBank(name) {
    shownBank = name;
    $('vec-centre').title = name ? `all of ${name} back to ${app.byName[name].default}` : '';
    for (const bank of $('vec-banks').children) bank.hidden = bank.dataset.bank !== name;
    for (const tab of $('vec-tabs').querySelectorAll('.tab')) tab.setAttribute('aria-selected', String(tab.dataset.tab === name));
    const doc = (app.byName[name] || {}).doc || '';
    // The target point only sounds through mix; say so where the performer is looking.
    $('vec-doc').textContent = name === 'target' && app.byName.mix ? `${doc} · mix blends towards it` : doc;
  }

  function makeToggle(p) {
    const b = el('button', { type: 'button', className: 'btn toggle', title: `${p.doc || p.name} (space)` },
      el('span', { className: 'led' }), el('span', { textContent: p.name }));
    b.dataset.param = p.name;
    b.addEventListener('click', () => toggle(p));
    addView(p.name, (v) => {
      const on = v >= (p.min + p.max) / 2;
      b.classList.toggle('on', on);
      b.setAttribute('aria-pressed', String(on));
      if (p.name === 'freeze') $('frozen-badge').hidden = !on;
    });
    return b;
  }

  const toggle = (p) => userSet(p.name, shown(p.name) >= (p.min + p.max) / 2 ? p.min : p.max, true);

  function makeAction(p) {
    const hint = { reset: ' (r)', panic: ' (esc)' }[p.name] || '';
    const b = el('button', { type: 'button', className: 'btn action', textContent: p.name, title: (p.doc || p.name) + hint });
    b.dataset.action = p.name;
    if (p.name === 'panic') b.classList.add('danger');
    b.addEventListener('click', () => action(p.name));
    // The server counts presses; flash the button when the count moves, as proof it got there.
    let last = null;
    addView(p.name, (v) => {
      if (last != null && v > last) restartAnimation(b, 'flash');
      last = v;
    });
    return b;
  }

  // ---- XY pad --------------------------------------------------------------------------------------------
  const pad = { param: 'latent', x: 0, y: 1, pointer: null };

  function buildPad(vectors) {
    $('pad-panel').hidden = !vectors.length;
    if (!vectors.length) return;
    if (!vectors.some((p) => p.name === pad.param)) pad.param = vectors[0].name;
    const sel = $('xy-param');
    sel.replaceChildren(...vectors.map((p) => el('option', { value: p.name, textContent: p.name })));
    sel.value = pad.param;
    fillDimSelects();
  }

  function fillDimSelects() {
    const p = app.byName[pad.param];
    const options = () => Array.from({ length: p.size }, (_, i) => el('option', { value: String(i), textContent: String(i) }));
    if (pad.x >= p.size) pad.x = 0;
    if (pad.y >= p.size || pad.y === pad.x) pad.y = pad.x === 1 ? 0 : Math.min(1, p.size - 1);
    for (const axis of ['x', 'y']) {
      $('xy-' + axis).replaceChildren(...options());
      $('xy-' + axis).value = String(pad[axis]);
    }
    markPadDims();
    renderPad();
  }

  // Tag the two faders the pad moves, so the performer sees which ones will follow it.
  function markPadDims() {
    for (const f of document.querySelectorAll('.fader[data-axis]')) delete f.dataset.axis;
    for (const [axis, i] of [['x', pad.x], ['y', pad.y]]) {
      const f = document.querySelector(`.fader[data-fader="${keyOf(pad.param, i)}"]`);
      if (f) f.dataset.axis = axis;
    }
  }

  $('xy-param').addEventListener('change', (e) => { pad.param = e.target.value; fillDimSelects(); showBank(pad.param); });
  for (const axis of ['x', 'y']) {
    $('xy-' + axis).addEventListener('change', (e) => {
      const other = axis === 'x' ? 'y' : 'x';
      const i = Number(e.target.value);
      if (pad[other] === i) pad[other] = pad[axis]; // picking the other axis's dimension swaps them
      pad[axis] = i;
      $('xy-' + other).value = String(pad[other]);
      markPadDims();
      renderPad();
    });
  }

  function renderPad() {
    const p = app.byName[pad.param];
    if (!p || !isVector(p)) return;
    const [vx, vy] = [shown(keyOf(p.name, pad.x)), shown(keyOf(p.name, pad.y))];
    if (vx == null || vy == null) return;
    const [fx, fy] = [vx, vy].map((v) => Math.min(100, Math.max(0, pct(p, v))));
    $('xy-puck').style.left = $('xy-cross-v').style.left = fx + '%';
    $('xy-puck').style.top = $('xy-cross-h').style.top = 100 - fy + '%';
    $('xy').dataset.pad = p.name; // colours the puck per vector
    $('xy-readout').textContent = `${p.name}[${pad.x}] ${fmtValue(p, vx)}   ${p.name}[${pad.y}] ${fmtValue(p, vy)}`;
  }

  function padMove(e) {
    const p = app.byName[pad.param];
    const r = $('xy').getBoundingClientRect();
    const fx = Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    const fy = Math.min(1, Math.max(0, 1 - (e.clientY - r.top) / r.height));
    userSet(keyOf(p.name, pad.x), p.min + fx * (p.max - p.min));
    userSet(keyOf(p.name, pad.y), p.min + fy * (p.max - p.min));
  }

  $('xy').addEventListener('pointerdown', (e) => {
    if (!app.byName[pad.param] || e.button > 0) return;
    pad.pointer = e.pointerId; // only this pointer moves the puck (not a fader drag wandering over the pad)
    try { $('xy').setPointerCapture(e.pointerId); } catch { /* synthetic events have no live pointer */ }
    grabPointer(e.pointerId, [keyOf(pad.param, pad.x), keyOf(pad.param, pad.y)]);
    $('xy').classList.add('active');
    padMove(e);
  });
  $('xy').addEventListener('pointermove', (e) => { if (e.pointerId === pad.pointer && pointerKeys.has(e.pointerId)) padMove(e); });
  const padUp = () => { pad.pointer = null; $('xy').classList.remove('active'); };
  for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) $('xy').addEventListener(type, padUp);
  const padHome = () => {
    const p = app.byName[pad.param];
    if (!p) return;
    for (const i of [pad.x, pad.y]) userSet(keyOf(p.name, i), p.default, true);
  };
  $('xy').addEventListener('dblclick', padHome);
  onDoubleTap($('xy'), padHome);

  // ---- keyboard ------------------------------------------------------------------------------------------
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    // Panic works whatever has focus (a fader keeps it after a drag): on stage it must never be swallowed.
    if (e.key === 'Escape') {
      action('panic');
      return;
    }
    if (e.target instanceof Element && e.target.closest('input, select, textarea')) return;
    if (e.key === ' ') {
      e.preventDefault(); // no page scroll, and no click on a focused button (that could be reset)
      const p = app.params.find(isToggle);
      if (p && !e.repeat) toggle(p);
    } else if ((e.key === 'r' || e.key === 'R') && !e.repeat) {
      action('reset');
    }
  });
  // A focused button would click itself on space keyup: swallow that, the shortcut already acted.
  document.addEventListener('keyup', (e) => {
    if (e.key === ' ' && e.target instanceof HTMLButtonElement) e.preventDefault();
  });

  // ---- telemetry: meters and counters --------------------------------------------------------------------
  function setNum(id, v, digits, scale = 1) {
    const node = $(id);
    node.dataset.value = v == null ? '' : String(v);
    node.textContent = typeof v === 'number' && Number.isFinite(v) ? (v * scale).toFixed(digits) : v === null ? '-∞' : '–';
  }

  const hold = { peak: -Infinity, until: 0, t: 0 };
  const dbFrac = (db) => (Math.min(0, Math.max(-60, Number.isFinite(db) ? db : -60)) + 60) / 60; // -60..0 dB
  function meter(id, db, holdDb) {
    $(id).querySelector('.meter-cover').style.transform = `scaleX(${1 - dbFrac(db)})`;
    if (holdDb != null) $(id).querySelector('.meter-hold').style.left = `${dbFrac(holdDb) * 100}%`;
  }

  const restartAnimation = (node, cls) => { node.classList.remove(cls); void node.offsetWidth; node.classList.add(cls); };
  const lastCount = {};
  function counter(id, v) {
    setNum(id, v, 0);
    const box = $('stat-' + id);
    if (box.classList.contains('watch') && lastCount[id] != null && v > lastCount[id]) restartAnimation(box, 'alert');
    box.classList.toggle('nonzero', v > 0);
    lastCount[id] = v;
  }

  function onTelemetry(t) {
    pub.telemetryCount += 1;
    setNum('peak-db', t.peak_db, 1);
    setNum('rms-db', t.rms_db, 1);
    setNum('fill-ms', t.fill_ms, 1);
    setNum('step-us', t.step_us, 1);
    setNum('load', t.load, 1, 100); // the server sends a fraction; the meter shows percent
    for (const id of ['underruns', 'device-xruns', 'resets', 'errors']) counter(id, t[id.replace('-', '_')]);

    // Peak hold: the highest peak stays 1.5 s, then falls at 20 dB/s.
    const now = performance.now();
    const peak = Number.isFinite(t.peak_db) ? t.peak_db : -60;
    const dt = Math.min(1, (now - hold.t) / 1000);
    hold.t = now;
    if (peak >= hold.peak) Object.assign(hold, { peak, until: now + 1500 });
    else if (now > hold.until) hold.peak = Math.max(peak, hold.peak - 20 * dt);
    meter('peak-meter', t.peak_db, hold.peak);
    meter('rms-meter', t.rms_db, null);
    $('peak-meter').classList.toggle('clip', peak > -0.5);

    if (Number.isFinite(t.played_s)) {
      const s = Math.floor(t.played_s);
      $('played').textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    }
    if (Array.isArray(t.spectrum)) spectro.push(t.spectrum);
  }

  // ---- spectrogram ---------------------------------------------------------------------------------------
  // Perceptual colour map (inferno), 11 stops interpolated into a 256-entry table.
  const LUT = (() => {
    const stops = ['000004', '160b39', '420a68', '6a176e', '932667', 'bc3754', 'dd513a', 'f37819', 'fca50a', 'f6d746', 'fcffa4']
      .map((h) => [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)));
    const lut = new Uint8ClampedArray(256 * 3);
    for (let v = 0; v < 256; v++) {
      const x = (v / 255) * (stops.length - 1);
      const i = Math.min(stops.length - 2, Math.floor(x));
      const f = x - i;
      for (let c = 0; c < 3; c++) lut[v * 3 + c] = stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f;
    }
    return lut;
  })();

  const spectro = {
    canvas: $('spectrogram'),
    ctx: $('spectrogram').getContext('2d', { alpha: false }),
    w: 0, h: 0, colW: 2, column: null,

    // Size the backing store to the element in device pixels; keep the history across resizes.
    resize() {
      const dpr = window.devicePixelRatio || 1;
      const r = this.canvas.getBoundingClientRect();
      const w = Math.max(1, Math.round(r.width * dpr));
      const h = Math.max(1, Math.round(r.height * dpr));
      if (w === this.w && h === this.h) return;
      const old = this.w ? el('canvas', { width: this.w, height: this.h }) : null;
      if (old) old.getContext('2d').drawImage(this.canvas, 0, 0);
      this.canvas.width = this.w = w;
      this.canvas.height = this.h = h;
      this.ctx.fillStyle = `rgb(${LUT[0]},${LUT[1]},${LUT[2]})`;
      this.ctx.fillRect(0, 0, w, h);
      if (old) this.ctx.drawImage(old, 0, 0, old.width, old.height, w - old.width, 0, old.width, h);
      this.colW = Math.max(1, Math.round(2 * dpr)); // 2 CSS px per frame: ~15 s of history on a laptop
      this.column = this.ctx.createImageData(this.colW, h);
      this.labels();
    },

    // One telemetry frame: shift everything left by one column, paint the new column at the right edge.
    push(bins) {
      if (!this.column || !bins.length) return;
      const { ctx, w, h, colW } = this;
      ctx.drawImage(this.canvas, colW, 0, w - colW, h, 0, 0, w - colW, h);
      const data = this.column.data;
      const n = bins.length;
      for (let y = 0; y < h; y++) {
        // Row y (top = high frequency) sits at fractional band b; interpolate between neighbouring bands.
        const b = Math.min(n - 1, Math.max(0, (1 - (y + 0.5) / h) * n - 0.5));
        const i = Math.floor(b);
        const j = Math.min(n - 1, i + 1);
        const v = Math.round(bins[i] + (bins[j] - bins[i]) * (b - i)) & 255;
        for (let o = y * colW * 4; o < (y + 1) * colW * 4; o += 4) {
          data.set(LUT.subarray(v * 3, v * 3 + 3), o);
          data[o + 3] = 255;
        }
      }
      ctx.putImageData(this.column, w - colW, 0);
    },

    // Frequency labels at 1-2-5 steps, placed where the log-spaced bands put them.
    labels() {
      const { low_hz: lo, high_hz: hi } = app.spectrum;
      const axis = $('freq-axis');
      axis.replaceChildren();
      if (!(lo > 0 && hi > lo)) return;
      const cssH = this.canvas.getBoundingClientRect().height;
      let lastY = Infinity;
      for (const f of [20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000]) {
        if (f <= lo || f >= hi) continue;
        const frac = Math.log(f / lo) / Math.log(hi / lo);
        const y = cssH * (1 - frac);
        if (lastY - y < 16 || y < 24) continue; // no crowding, and the top stays free for the unit
        lastY = y;
        axis.append(el('span', { textContent: f >= 1000 ? f / 1000 + 'k' : String(f), style: `bottom: ${frac * 100}%` }));
      }
      axis.append(el('span', { className: 'unit', textContent: 'Hz' }));
    },
  };
  new ResizeObserver(() => spectro.resize()).observe(spectro.canvas);

  // ---- toast ---------------------------------------------------------------------------------------------
  let toastTimer = 0;
  function toast(text) {
    Object.assign($('toast'), { textContent: text, hidden: false });
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { $('toast').hidden = true; }, 3500);
  }

  // ---- messages from the server --------------------------------------------------------------------------
  function onFull(m) {
    app.params = Array.isArray(m.params) ? m.params : [];
    app.byName = Object.fromEntries(app.params.map((p) => [p.name, p]));
    if (m.spectrum) app.spectrum = m.spectrum;
    if (typeof m.telemetry_hz === 'number') app.telemetryHz = m.telemetry_hz;
    app.values = pub.state = { ...(m.values || {}) };
    app.midi = m.midi || null;
    const sig = JSON.stringify(app.params) + (app.midi ? ' midi' : '');
    if (sig !== app.tableSig) { app.tableSig = sig; build(); }
    renderAll();
    spectro.labels();
    const md = m.model || {};
    const parts = [md.name, md.domain, md.samplerate && `${md.samplerate / 1000} kHz`, md.latent_dim && `latent ${md.latent_dim}`,
      md.layers && md.hidden && `${md.layers}×${md.hidden}`].filter(Boolean);
    $('model').textContent = parts.join(' · ') || 'model';
    onScenes(m.scenes);
    onModels(m.models || null);
    onRecord(m.record || null);
    onLearn(m.learn || null);
    if (app.midi) onMidi(app.midi);
  }

  function onValues(values) {
    for (const [name, v] of Object.entries(values)) {
      app.values[name] = Array.isArray(v) ? v.slice() : v;
      const p = app.byName[name];
      const keys = p && isVector(p) ? Array.from({ length: p.size }, (_, i) => keyOf(name, i)) : [name];
      for (const key of keys) if (!isHeld(key)) render(key);
    }
  }

  function onMessage(m) {
    if (!m || typeof m !== 'object') return;
    if (m.type === 'state') {
      if (m.full) onFull(m);
      else if (m.values) onValues(m.values);
    } else if (m.type === 'telemetry') onTelemetry(m);
    else if (m.type === 'scenes') onScenes(m.names);
    else if (m.type === 'midi') onMidi(m);
    else if (m.type === 'record') onRecord(m);
    else if (m.type === 'learn') onLearn(m.state || null);
    else if (m.type === 'models') onModels(m.models || null);
    else if (m.type === 'model' && m.loading) toast(`loading ${m.loading}…`);
    else if (m.type === 'error') toast(m.error || 'the server refused a message');
  }

  // ---- connection ----------------------------------------------------------------------------------------
  let ws = null, retryMs = RETRY_MS[0], everOpen = false, lastMessage = 0;

  function setStatus(kind, text, title = '') {
    const s = $('status');
    if (s.textContent !== text) s.textContent = text;
    s.dataset.state = kind;
    s.title = title;
    document.body.classList.toggle('offline', kind !== 'connected' && kind !== 'stalled');
  }

  function connect() {
    // Only the very first attempt says "connecting"; retries stay red so the header doesn't flicker.
    if (!everOpen) setStatus('connecting', 'connecting…');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    ws = pub.socket = new WebSocket(`${scheme}://${location.host}/ws${location.search}`);
    ws.addEventListener('open', () => {
      everOpen = true;
      retryMs = RETRY_MS[0];
      lastMessage = performance.now();
      setStatus('connected', 'connected');
    });
    ws.addEventListener('message', (e) => {
      lastMessage = performance.now();
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      onMessage(m);
    });
    ws.addEventListener('close', () => {
      // Never the word "connected" here: tests (and eyes) look for it to mean we are live.
      setStatus('offline', 'offline · reconnecting…', `next try in ${(retryMs / 1000).toFixed(1)} s`);
      setTimeout(connect, retryMs);
      retryMs = Math.min(RETRY_MS[1], retryMs * 2);
    });
  }

  // A dropped Wi-Fi link can leave a socket "open" for a long time: say so when telemetry stops arriving.
  setInterval(() => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const silent = app.telemetryHz > 0 && performance.now() - lastMessage > Math.max(2000, 5000 / app.telemetryHz);
    setStatus(silent ? 'stalled' : 'connected', silent ? 'connected · no data' : 'connected');
  }, 500);

  // A tablet that slept may have missed changes: ask for the whole state again when the page is shown.
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'get' }));
  });

  connect();
})();
