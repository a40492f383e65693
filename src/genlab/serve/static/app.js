// genlab studio: the browser front end of `genlab serve`.
// Plain ES2020, no framework, no build step. Every server-provided string goes
// into the page through textContent / text nodes, never innerHTML.
'use strict';

(() => {
  // ------------------------------------------------------------------ helpers
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const enc = encodeURIComponent;

  /** createElement with attributes and children (strings become text nodes). */
  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = String(v);
        else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(e, kids);
    return e;
  }
  function append(parent, kids) {
    for (const kid of kids.flat(Infinity)) {
      if (kid === undefined || kid === null || kid === false) continue;
      parent.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return parent;
  }
  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }
  function show(node, on) {
    node.hidden = !on;
  }
  function fmt(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (typeof v !== 'number') return String(v);
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 100) return v.toFixed(1);
    if (a >= 0.0001) return String(Number(v.toPrecision(3)));
    return v.toExponential(2);
  }
  function pct(v) {
    return v === null || v === undefined ? '–' : `${(v * 100).toFixed(0)}%`;
  }
  function pretty(name) {
    return String(name).replace(/_/g, ' ');
  }
  function randomSeed() {
    const a = new Uint32Array(1);
    crypto.getRandomValues(a);
    return a[0] % 1000000;
  }
  function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  function detailText(data, r) {
    if (data && data.detail !== undefined) {
      const d = data.detail;
      if (typeof d === 'string') return d;
      if (Array.isArray(d)) {
        return d
          .map((x) => {
            const loc = Array.isArray(x.loc) ? x.loc.filter((p) => p !== 'body').join('.') : '';
            return (loc ? `${loc}: ` : '') + (x.msg || JSON.stringify(x));
          })
          .join('; ');
      }
      return JSON.stringify(d);
    }
    return `${r.status} ${r.statusText || 'error'}`;
  }

  /** fetch JSON; POST when a body is given. Throws ApiError with the server's one-line detail. */
  async function api(path, body) {
    const opts = { credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      opts.method = 'POST';
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, opts);
    } catch (e) {
      throw new ApiError('cannot reach the server', 0);
    }
    let data = null;
    const text = await r.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!r.ok) {
      let msg = detailText(data, r);
      if (r.status === 429 || r.status === 503) {
        const ra = r.headers.get('Retry-After');
        msg = `busy: ${msg}${ra ? ` (try again in ${ra} s)` : ''}`;
      }
      throw new ApiError(msg, r.status);
    }
    return data;
  }

  function setStatus(node, msg, kind) {
    node.textContent = msg || '';
    node.classList.remove('error', 'ok', 'warn', 'busy');
    if (kind) node.classList.add(kind);
  }

  function globalError(msg) {
    const b = $('#global-error');
    b.textContent = msg || '';
    show(b, !!msg);
  }

  // --------------------------------------------------------------- job runner
  const openStreams = new Set();

  /**
   * POST /api/generate, then follow its events. h: callbacks
   * {queued(pos), start(), progress(d), preview(d), token(d), result(d), error(msg), cancelled(), done(outcome)}.
   * Returns {id, cancel()}; throws ApiError when the job is refused.
   */
  async function runJob(body, h) {
    const resp = await api('/api/generate', body);
    const job = { id: resp.job, outcome: null, finished: false, es: null };
    if (h.queued) h.queued(resp.position || 0);
    const es = new EventSource(resp.events);
    job.es = es;
    openStreams.add(es);
    const finish = (outcome) => {
      if (job.finished) return;
      job.finished = true;
      if (!job.outcome) job.outcome = outcome;
      es.close();
      openStreams.delete(es);
      if (h.done) h.done(job.outcome);
    };
    const on = (name, fn) =>
      es.addEventListener(name, (ev) => {
        let d = {};
        try {
          d = ev.data ? JSON.parse(ev.data) : {};
        } catch (e) {
          d = {};
        }
        if (fn) fn(d);
      });
    on('queued', (d) => h.queued && h.queued(d.position));
    on('start', () => h.start && h.start());
    on('progress', (d) => h.progress && h.progress(d));
    on('preview', (d) => h.preview && h.preview(d));
    on('token', (d) => h.token && h.token(d));
    on('result', (d) => {
      job.outcome = 'result';
      if (h.result) h.result(d);
    });
    on('error', (d) => {
      // the server's "error" event carries data; a connection failure is a plain Event
      if (d && d.message !== undefined) {
        job.outcome = 'error';
        if (h.error) h.error(d.message);
      }
    });
    on('cancelled', () => {
      job.outcome = 'cancelled';
      if (h.cancelled) h.cancelled();
    });
    on('done', () => finish(job.outcome || 'done'));
    es.onerror = () => {
      // EventSource would reconnect (and a reconnect is a new listener): stop instead
      if (!job.finished) finish(job.outcome || 'lost');
    };
    job.cancel = async () => {
      if (job.finished) return;
      try {
        await api(`/api/jobs/${enc(job.id)}/cancel`, {});
      } catch (e) {
        finish('cancelled'); // closing the stream cancels the job as well
        return;
      }
      setTimeout(() => finish(job.outcome || 'cancelled'), 8000);
    };
    return job;
  }

  function closeAllStreams() {
    for (const es of openStreams) es.close();
    openStreams.clear();
  }
  window.addEventListener('pagehide', closeAllStreams);
  window.addEventListener('beforeunload', closeAllStreams);

  // ------------------------------------------------------------------ state
  const S = {
    runs: [],
    byId: new Map(),
    run: null, // full RUN (with curves) of the studio
    job: null,
    lastBatch: null, // {seed, n, controls} of the samples shown in #results
    picks: [], // batch indices picked (A, B)
    blobUrls: [],
    pollTimer: null,
    streams: new Map(),
  };

  // ---------------------------------------------------------------- controls
  /**
   * Draw one run's declared controls into container. o = {attr, prefix, only}: attr is the
   * data attribute (data-control), prefix goes before each input name (the studio uses "").
   */
  function drawControls(container, run, o) {
    clear(container);
    const names = Object.keys(run.controls || {}).filter((n) => controlApplies(run, n));
    // a run that draws what a prompt says: its prompt boxes first, above the sampling knobs
    if (run.takes_prompt) names.sort((a, b) => isPromptBox(run, b) - isPromptBox(run, a));
    for (const name of names) {
      if (o.only && !o.only.includes(name)) continue;
      container.append(controlWidget(name, run.controls[name], run, o));
    }
  }

  /** Whether guidance steers this run: toward a class (conditional) or toward a prompt. */
  function guided(run) {
    return !!(run.conditional || run.takes_prompt);
  }
  /** The prompt and negative prompt of a run that draws what a prompt says. */
  function isPromptBox(run, name) {
    return !!run.takes_prompt && (name === 'prompt' || name === 'negative_prompt');
  }

  function controlApplies(run, name) {
    const spec = run.controls[name];
    if (!spec) return false;
    if (name === 'label' && !run.conditional) return false;
    if (name === 'guidance' && !guided(run)) return false;
    if (name === 'label' && !(run.classes && run.classes.length)) return false;
    return true;
  }

  function numStep(spec) {
    if (spec.type === 'int') return 1;
    if (spec.low !== null && spec.low !== undefined && spec.high !== null && spec.high !== undefined) {
      const span = spec.high - spec.low;
      if (span > 0) return Math.max(0.001, 10 ** Math.floor(Math.log10(span / 1000)));
    }
    return 0.01;
  }
  function hasSlider(spec) {
    const lo = spec.low;
    const hi = spec.high;
    if (lo === null || lo === undefined || hi === null || hi === undefined) return false;
    if (spec.type === 'int') return hi - lo <= 1000;
    return hi - lo <= 1000;
  }

  function controlWidget(name, spec, run, o) {
    const id = `${o.prefix || ''}ctl-${name}`;
    const inputName = `${o.prefix || ''}${name}`;
    const wrap = el('div', { class: 'control field' });
    wrap.setAttribute(`data-${o.attr}`, name);
    wrap.dataset.kind = '';
    const label = el('label', { for: id, class: 'control-label', title: spec.help || '' }, pretty(name));
    wrap.append(label);
    const help = spec.help ? el('p', { class: 'caption help' }, spec.help) : null;
    const nullable = spec.default === null || spec.default === undefined;

    if (isPromptBox(run, name)) return promptWidget(wrap, name, spec, id, inputName, help);
    if (name === 'label' || (spec.many && spec.type === 'int' && run.classes && run.classes.length)) {
      wrap.dataset.kind = 'label';
      const sel = el('select', { id, name: inputName, title: spec.help || '' });
      sel.append(el('option', { value: '' }, 'any'));
      (run.classes || []).forEach((c, i) => sel.append(el('option', { value: String(i) }, String(c))));
      append(wrap, [sel, help]);
      return wrap;
    }
    if (spec.many) {
      wrap.dataset.kind = 'list';
      const ta = el('textarea', {
        id,
        name: inputName,
        rows: 2,
        placeholder: spec.type === 'str' ? 'one per line (\\n: a line break)' : 'one per line',
        title: spec.help || '',
        spellcheck: 'false',
      });
      const d = spec.default;
      if (Array.isArray(d)) ta.value = d.map((x) => (typeof x === 'string' ? escapeLine(x) : String(x))).join('\n');
      else if (d !== null && d !== undefined) ta.value = String(d);
      append(wrap, [ta, help]);
      return wrap;
    }
    if (spec.choices && spec.choices.length) {
      wrap.dataset.kind = 'choice';
      const sel = el('select', { id, name: inputName, title: spec.help || '' });
      if (nullable) sel.append(el('option', { value: '' }, 'default'));
      for (const c of spec.choices) sel.append(el('option', { value: String(c) }, String(c)));
      if (!nullable) sel.value = String(spec.default);
      append(wrap, [sel, help]);
      return wrap;
    }
    if (spec.type === 'str') {
      wrap.dataset.kind = 'str';
      const isPrompt = name === 'prompt';
      const input = isPrompt
        ? el('textarea', { id, name: inputName, rows: 4, title: spec.help || '', placeholder: spec.help || '' })
        : el('input', { id, name: inputName, type: 'text', title: spec.help || '' });
      if (!nullable) input.value = String(spec.default);
      if (nullable) input.placeholder = 'default';
      append(wrap, [input, help]);
      return wrap;
    }
    // numbers
    wrap.dataset.kind = 'number';
    const box = el('input', {
      id,
      name: inputName,
      type: 'number',
      step: spec.type === 'int' ? 1 : 'any',
      min: spec.low,
      max: spec.high,
      title: spec.help || '',
      inputmode: spec.type === 'int' ? 'numeric' : 'decimal',
    });
    if (!nullable) box.value = String(spec.default);
    else box.placeholder = 'default';
    const row = el('div', { class: 'inline' });
    let range = null;
    if (hasSlider(spec)) {
      range = el('input', {
        type: 'range',
        min: spec.low,
        max: spec.high,
        step: numStep(spec),
        'aria-label': `${pretty(name)} slider`,
        class: 'slider',
      });
      range.value = nullable ? String(neutralValue(spec)) : String(spec.default);
      if (nullable) range.classList.add('unset');
      range.addEventListener('input', () => {
        box.value = range.value;
        range.classList.remove('unset');
      });
      box.addEventListener('input', () => {
        if (box.value === '') {
          range.classList.add('unset');
        } else {
          range.value = box.value;
          range.classList.remove('unset');
        }
      });
      row.append(range);
    }
    row.append(box);
    if (nullable) {
      const reset = el('button', {
        type: 'button',
        class: 'icon-btn small',
        title: 'back to the default (not sent)',
        'aria-label': `reset ${pretty(name)} to default`,
      }, '×');
      reset.addEventListener('click', () => {
        box.value = '';
        if (range) {
          range.value = String(neutralValue(spec));
          range.classList.add('unset');
        }
      });
      row.append(reset);
    }
    append(wrap, [row, help]);
    return wrap;
  }

  /** A prompt box: Enter generates (Shift+Enter: a new line, a prompt a line, taken in turn
   * by the samples). */
  function promptWidget(wrap, name, spec, id, inputName, help) {
    wrap.dataset.kind = 'prompt';
    wrap.classList.add('prompt-field');
    const main = name === 'prompt';
    const ta = el('textarea', {
      id,
      name: inputName,
      rows: main ? 3 : 1,
      class: main ? 'prompt-box' : 'prompt-box negative',
      placeholder: main ? 'what to draw, e.g. a small red circle, top left' : 'optional: what the image should not be',
      title: `${spec.help || ''} (Enter: generate; Shift+Enter: another prompt, one a sample)`,
      spellcheck: 'false',
      'aria-describedby': `${id}-help`,
    });
    ta.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter' || ev.shiftKey || ev.isComposing) return;
      ev.preventDefault();
      const form = ta.closest('form');
      if (form) form.requestSubmit();
    });
    if (help) help.id = `${id}-help`;
    append(wrap, [ta, help]);
    return wrap;
  }

  function neutralValue(spec) {
    let v = spec.type === 'int' ? spec.low ?? 0 : 1;
    if (spec.low !== null && spec.low !== undefined && v < spec.low) v = spec.low;
    if (spec.high !== null && spec.high !== undefined && v > spec.high) v = spec.high;
    return v;
  }

  /** One line of a list box: \n and \t stand for a line break and a tab. */
  function unescapeLine(s) {
    return s.replace(/\\(n|t|\\)/g, (m, c) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
  }
  function escapeLine(s) {
    return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\t/g, '\\t');
  }

  function castOne(spec, s, name) {
    if (spec.type === 'str') return s;
    const v = Number(s);
    if (s === '' || !Number.isFinite(v)) throw new Error(`${pretty(name)}: "${s}" is not a number`);
    return v;
  }

  /** Read the values of the drawn controls: {name: value}; empty means "not sent". */
  function readControls(container, run, o) {
    const out = {};
    for (const wrap of $$(`[data-${o.attr}]`, container)) {
      const name = wrap.getAttribute(`data-${o.attr}`);
      const spec = run.controls[name];
      const input = wrap.querySelector(`[name="${(o.prefix || '') + name}"]`);
      if (!spec || !input) continue;
      const kind = wrap.dataset.kind;
      const raw = input.value;
      if (kind === 'label') {
        if (raw !== '') out[name] = parseInt(raw, 10);
      } else if (kind === 'prompt') {
        const lines = raw.split('\n').map((x) => x.trim()).filter((x) => x !== '');
        if (lines.length) out[name] = lines.length === 1 ? lines[0] : lines;
      } else if (kind === 'list') {
        const items = raw
          .split('\n')
          .map((s) => (spec.type === 'str' ? unescapeLine(s) : s.trim()))
          .filter((s) => s !== '');
        if (items.length) out[name] = items.map((s) => castOne(spec, s, name));
      } else if (kind === 'choice') {
        if (raw !== '') out[name] = spec.type === 'str' ? raw : castOne(spec, raw, name);
      } else if (kind === 'str') {
        const nullable = spec.default === null || spec.default === undefined;
        if (!(nullable && raw === '')) out[name] = raw;
      } else if (kind === 'number') {
        if (raw.trim() !== '') {
          if (!input.checkValidity() && input.validity.badInput) {
            throw new Error(`${pretty(name)}: not a number`);
          }
          out[name] = castOne(spec, raw.trim(), name);
        }
      }
    }
    return out;
  }

  /** Set drawn controls from a controls object (restoring a file). */
  function writeControls(container, run, o, controls) {
    for (const wrap of $$(`[data-${o.attr}]`, container)) {
      const name = wrap.getAttribute(`data-${o.attr}`);
      const input = wrap.querySelector(`[name="${(o.prefix || '') + name}"]`);
      if (!input) continue;
      const has = controls && Object.prototype.hasOwnProperty.call(controls, name);
      let v = has ? controls[name] : run.controls[name].default;
      const kind = wrap.dataset.kind;
      if (kind === 'label') {
        if (Array.isArray(v)) v = v.length && v.every((x) => x === v[0]) ? v[0] : null;
        input.value = v === null || v === undefined ? '' : String(v);
      } else if (kind === 'prompt') {
        input.value = Array.isArray(v) ? v.join('\n') : v === null || v === undefined ? '' : String(v);
      } else if (kind === 'list') {
        const list = Array.isArray(v) ? v : v === null || v === undefined ? [] : [v];
        input.value = list.map((x) => (typeof x === 'string' ? escapeLine(x) : String(x))).join('\n');
      } else {
        input.value = v === null || v === undefined ? '' : String(v);
        input.dispatchEvent(new Event('input'));
      }
    }
  }

  function cleanControls(run, controls) {
    const out = {};
    for (const [k, v] of Object.entries(controls || {})) {
      if (v === null || v === undefined) continue;
      if (!run.controls || !run.controls[k]) continue;
      if (k === 'label' && !run.conditional) continue;
      if (k === 'guidance' && !guided(run)) continue;
      out[k] = v;
    }
    return out;
  }

  // ------------------------------------------------------------------- runs
  async function loadRuns() {
    const data = await api('/api/runs');
    S.runs = (data && data.runs) || [];
    S.byId = new Map(S.runs.map((r) => [r.id, r]));
    fillRunSelect($('#run'), S.runs);
    fillCompareSelects();
    fillJudgeSelects();
    drawRunsTable();
    return S.runs;
  }

  function runLabel(r) {
    const bits = [r.family, r.kind];
    if (r.training) bits.push('training');
    return `${r.name || r.id} (${bits.join(', ')})`;
  }

  function fillRunSelect(sel, runs, keep) {
    const prev = keep !== undefined ? keep : sel.value;
    clear(sel);
    for (const r of runs) sel.append(el('option', { value: r.id }, runLabel(r)));
    if (runs.some((r) => r.id === prev)) sel.value = prev;
  }

  // ------------------------------------------------------------------ tabs
  const TABS = ['studio', 'compare', 'judge', 'runs'];
  function showTab(name) {
    if (!TABS.includes(name)) name = 'studio';
    for (const t of TABS) {
      show($(`#panel-${t}`), t === name);
      const b = $(`#tab-${t}`);
      b.classList.toggle('active', t === name);
      b.setAttribute('aria-selected', t === name ? 'true' : 'false');
    }
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    if (name === 'judge') ensureJudgeSummary();
  }
  for (const t of TABS) $(`#tab-${t}`).addEventListener('click', () => showTab(t));
  window.addEventListener('hashchange', () => showTab(location.hash.slice(1)));

  // ================================================================ STUDIO
  const STUDIO = { attr: 'control', prefix: '' };

  async function selectRun(id, { keepN } = {}) {
    const base = S.byId.get(id);
    if (!base) return;
    $('#run').value = id;
    const prevKind = S.run ? S.run.kind : null;
    // draw at once from the listing (it holds the controls); the details only add curves
    S.run = base;
    drawControls($('#controls'), base, STUDIO);
    if (!keepN && prevKind !== base.kind) $('#n').value = base.kind === 'text' ? '1' : '16';
    $('#n').closest('.field').querySelector('.caption').textContent = base.kind === 'text' ? 'texts' : base.audio ? 'clips' : 'images';
    drawRunInfo(base);
    drawEval($('#eval'), base);
    setupExplore(base);
    setupSay(base);
    resetOutputs();
    drawCurve(base);
    schedulePoll(null);
    loadGallery();
    let full;
    try {
      full = await api(`/api/runs/${enc(id)}`);
    } catch (e) {
      if (S.run && S.run.id === id) $('#curve-info').textContent = `curves unavailable: ${e.message}`;
      return;
    }
    if (!S.run || S.run.id !== id) return; // switched again meanwhile
    S.run = Object.assign({}, S.run, full);
    S.byId.set(id, Object.assign({}, base, full, { curves: undefined }));
    drawRunInfo(S.run);
    drawEval($('#eval'), S.run);
    drawCurve(S.run);
    schedulePoll(S.run);
  }

  function drawRunInfo(run) {
    const info = $('#run-info');
    clear(info);
    const bits = [`${run.family}`, run.kind];
    if (run.shape && run.kind === 'images') bits.push(run.shape.join('×'));
    if (run.step !== undefined && run.step !== null) bits.push(`step ${run.step}`);
    if (run.weights) bits.push(`${run.weights} weights`);
    if (run.conditional) bits.push(`${(run.classes || []).length} classes`);
    if (run.takes_prompt) bits.push('draws what a prompt says');
    info.append(bits.join(' · '));
    if (run.ready === false) info.append(el('strong', { class: 'not-ready' }, ' · no weights yet'));
    if (run.weights_sha256) info.title = `weights sha256 ${run.weights_sha256}`;
    show($('#training-badge'), !!run.training);
    updateGenerateEnabled();
  }

  function updateGenerateEnabled() {
    const notReady = !!S.run && S.run.ready === false;
    $('#generate').disabled = !!S.job || notReady;
    $('#generate').title = notReady ? 'this run has no weights yet (it is starting to train)' : '';
  }

  function resetOutputs() {
    S.lastBatch = null;
    S.picks = [];
    revokeBlobs();
    clear($('#results'));
    show($('#results-card'), false);
    clear($('#explore-out'));
    clear($('#stream'));
    show($('#stream'), false);
    clear($('#preview-grid'));
    $('#preview').removeAttribute('src');
    show($('#preview-area'), false);
    show($('#live'), false);
    $('#progress').value = 0;
    setStatus($('#status'), '');
    galleryToken++; // drop a gallery answer still on its way for the previous run
    clear($('#gallery')).append(el('p', { class: 'caption' }, 'loading…'));
    updateExploreButtons();
  }

  function revokeBlobs() {
    for (const u of S.blobUrls) URL.revokeObjectURL(u);
    S.blobUrls = [];
  }
  function blobLink(obj, filename, label) {
    const url = URL.createObjectURL(new Blob([JSON.stringify(obj, null, 2)], { type: 'application/json' }));
    S.blobUrls.push(url);
    return el('a', { href: url, download: filename, class: 'dl', title: `download ${filename}` }, label);
  }

  function fileBase(run, meta, idx) {
    const seed = meta && meta.seed !== undefined ? meta.seed : 'x';
    const mode = meta && meta.mode && meta.mode !== 'sample' ? `-${meta.mode}` : '';
    return `genlab-${run}-seed-${seed}${mode}-${idx}`;
  }

  // ---------------------------------------------------------------- eval
  function drawEval(node, run) {
    clear(node);
    const ev = run && run.eval;
    if (!ev || !ev.metrics || !Object.keys(ev.metrics).length) {
      node.append(el('p', { class: 'caption' }, 'Not evaluated yet (genlab eval).'));
      return;
    }
    const m = ev.metrics;
    const floor = ev.floor || {};
    const table = el('table', { class: 'eval-table' });
    table.append(
      el('thead', null, el('tr', null, el('th', null, 'metric'), el('th', null, 'model'), el('th', { title: 'the same metric between two real samples' }, 'real vs real')))
    );
    const tb = el('tbody');
    for (const key of Object.keys(m)) {
      if (/_(ci|std)$/.test(key)) continue;
      const val = m[key];
      if (val !== null && typeof val === 'object') continue;
      tb.append(
        el('tr', null, el('th', { scope: 'row' }, pretty(key)), el('td', null, withSpread(m, key)), el('td', { class: 'floor' }, key in floor ? withSpread(floor, key) : '–'))
      );
    }
    table.append(tb);
    node.append(table);
    const cap = [];
    if (ev.n) cap.push(`n = ${ev.n}`);
    if (ev.measured_at) cap.push(`measured ${when(ev.measured_at)}`);
    if (typeof ev.protocol === 'string' && ev.protocol) cap.push(ev.protocol);
    else if (ev.protocol && typeof ev.protocol === 'object' && ev.protocol.extractor && ev.protocol.extractor.name) {
      cap.push(`features: ${ev.protocol.extractor.name}`);
    }
    if (cap.length) node.append(el('p', { class: 'caption' }, cap.join(' · ')));
  }
  function withSpread(obj, key) {
    const v = obj[key];
    let s = fmt(v);
    const ci = obj[`${key}_ci`];
    const sd = obj[`${key}_std`];
    if (Array.isArray(ci) && ci.length === 2) s += ` [${fmt(ci[0])}, ${fmt(ci[1])}]`;
    else if (typeof sd === 'number') s += ` ± ${fmt(sd)}`;
    return s;
  }

  // --------------------------------------------------------------- loss curve
  function drawCurve(run) {
    const canvas = $('#loss-curve');
    const curves = (run && run.curves) || {};
    const series = [
      { name: 'train', pts: curves.train || [], color: '#3b6fd8' },
      { name: 'val', pts: curves.val || [], color: '#d9822b' },
    ].filter((s) => s.pts.length);
    const card = $('#curve-card');
    show(card, series.length > 0 || !!(run && run.training));
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 300;
    const cssH = 170;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    const info = $('#curve-info');
    if (!series.length) {
      info.textContent = run && !run.curves ? 'loading…' : run && run.training ? 'waiting for the first logged step…' : 'no curves logged';
      return;
    }
    let x0 = Infinity;
    let x1 = -Infinity;
    let y0 = Infinity;
    let y1 = -Infinity;
    for (const s of series) {
      for (const [x, y] of s.pts) {
        if (!Number.isFinite(y)) continue;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
    if (!Number.isFinite(y0)) return;
    // ignore the very first spike: scale y to the 2nd..100th percentile of train
    const ys = series.flatMap((s) => s.pts.map((p) => p[1])).filter(Number.isFinite).sort((a, b) => a - b);
    const hiQ = ys[Math.min(ys.length - 1, Math.floor(ys.length * 0.98))];
    if (hiQ > y0 && y1 > hiQ + (hiQ - y0) * 2) y1 = hiQ + (hiQ - y0) * 0.5;
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) {
      y1 += 0.5;
      y0 -= 0.5;
    }
    const L = 44;
    const R = 8;
    const T = 8;
    const B = 22;
    const W = cssW - L - R;
    const H = cssH - T - B;
    const px = (x) => L + ((x - x0) / (x1 - x0)) * W;
    const py = (y) => T + (1 - (Math.min(y, y1) - y0) / (y1 - y0)) * H;
    g.font = '11px system-ui, sans-serif';
    g.strokeStyle = '#e3e6ea';
    g.fillStyle = '#6b7280';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let k = 0; k <= 3; k++) {
      const y = y0 + ((y1 - y0) * k) / 3;
      const yy = Math.round(py(y)) + 0.5;
      g.beginPath();
      g.moveTo(L, yy);
      g.lineTo(L + W, yy);
      g.stroke();
      g.fillText(fmt(y), L - 4, yy);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    g.fillText(String(x0), L, T + H + 5);
    g.fillText(String(x1), L + W - 10, T + H + 5);
    g.fillText('step', L + W / 2, T + H + 5);
    for (const s of series) {
      g.strokeStyle = s.color;
      g.lineWidth = 1.5;
      g.beginPath();
      s.pts.forEach(([x, y], i) => {
        if (!Number.isFinite(y)) return;
        if (i === 0) g.moveTo(px(x), py(y));
        else g.lineTo(px(x), py(y));
      });
      g.stroke();
      if (s.pts.length === 1) {
        g.fillStyle = s.color;
        g.fillRect(px(s.pts[0][0]) - 2, py(s.pts[0][1]) - 2, 4, 4);
      }
    }
    clear(info);
    for (const s of series) {
      const last = s.pts[s.pts.length - 1];
      const sw = el('span', { class: `swatch swatch-${s.name}` });
      info.append(sw, ` ${s.name} ${fmt(last[1])} (step ${last[0]})  `);
    }
  }

  function schedulePoll(run) {
    clearTimeout(S.pollTimer);
    S.pollTimer = null;
    if (!run || !run.training) return;
    S.pollTimer = setTimeout(async () => {
      if (!S.run || S.run.id !== run.id) return;
      try {
        const fresh = await api(`/api/runs/${enc(run.id)}`);
        if (!S.run || S.run.id !== run.id) return;
        // keep the drawn controls; refresh figures, curve and step
        S.run = Object.assign({}, S.run, fresh);
        drawRunInfo(S.run);
        drawEval($('#eval'), S.run);
        drawCurve(S.run);
        schedulePoll(S.run);
      } catch (e) {
        S.pollTimer = setTimeout(() => schedulePoll(run), 5000);
      }
    }, 5000);
  }
  window.addEventListener('resize', () => {
    if (S.run) drawCurve(S.run);
  });

  // ----------------------------------------------------------- token popover
  const tokInfo = new WeakMap();
  const pop = $('#tok-pop');
  function tokTitle(d) {
    if (typeof d.p !== 'number') return '';
    const alts = (d.top || []).map((t) => `${JSON.stringify(t.text)} ${Number(t.p).toFixed(2)}`).join(', ');
    return `p=${Number(d.p).toFixed(2)}${alts ? ` | alternatives: ${alts.replace(/"/g, "'")}` : ''}`;
  }
  function tokClass(p) {
    if (p < 0.05) return 'tok p-low';
    if (p < 0.2) return 'tok p-mid';
    return 'tok';
  }
  function showPop(span) {
    const d = tokInfo.get(span);
    if (!d || typeof d.p !== 'number') return;
    clear(pop);
    pop.append(el('div', { class: 'pop-head' }, el('code', null, visibleText(d.text)), `  p = ${Number(d.p).toFixed(3)}`));
    const list = el('div', { class: 'pop-list' });
    for (const t of d.top || []) {
      const bar = el('span', { class: 'pop-bar' });
      bar.style.width = `${Math.max(2, Math.round(Number(t.p) * 100))}%`;
      const row = el('div', { class: t.text === d.text ? 'pop-row chosen' : 'pop-row' },
        el('code', { class: 'pop-tok' }, visibleText(t.text)),
        el('span', { class: 'pop-track' }, bar),
        el('span', { class: 'pop-p' }, Number(t.p).toFixed(2)));
      list.append(row);
    }
    pop.append(list);
    show(pop, true);
    const r = span.getBoundingClientRect();
    const pw = pop.offsetWidth;
    const ph = pop.offsetHeight;
    let left = r.left + window.scrollX;
    left = Math.min(left, window.scrollX + document.documentElement.clientWidth - pw - 8);
    left = Math.max(window.scrollX + 4, left);
    let top = r.bottom + window.scrollY + 6;
    if (r.bottom + ph + 10 > window.innerHeight && r.top > ph + 10) top = r.top + window.scrollY - ph - 6;
    pop.style.left = `${left}px`;
    pop.style.top = `${top}px`;
  }
  function visibleText(s) {
    return String(s).replace(/\n/g, '⏎').replace(/\t/g, '⇥').replace(/^ /, '␣');
  }
  document.addEventListener('mouseover', (ev) => {
    const t = ev.target;
    if (t instanceof Element && t.classList.contains('tok')) showPop(t);
  });
  document.addEventListener('mouseout', (ev) => {
    const t = ev.target;
    if (t instanceof Element && t.classList.contains('tok')) show(pop, false);
  });
  document.addEventListener('click', (ev) => {
    const t = ev.target;
    if (t instanceof Element && t.classList.contains('tok')) showPop(t);
    else show(pop, false);
  });

  function makeTok(d, piece) {
    const span = el('span', { class: typeof d.p === 'number' ? tokClass(d.p) : 'tok', title: tokTitle(d) || null });
    span.textContent = piece === undefined ? d.text : piece;
    tokInfo.set(span, d);
    return span;
  }

  /** Which sample a token event belongs to. */
  function tokenSample(d) {
    return typeof d.i === 'number' ? d.i : 0;
  }

  /** A token-stream view: one block per sample, the prompt dimmed in front. */
  function makeStreamView(container, prompt, total) {
    clear(container);
    const blocks = new Map();
    const toks = new Map();
    const get = (i) => {
      if (!blocks.has(i)) {
        const body = el('div', { class: 'stream-body' });
        if (prompt) body.append(el('span', { class: 'prompt' }, prompt));
        const block = el('div', { class: 'stream-sample' }, total > 1 ? el('div', { class: 'caption' }, `#${i}`) : null, body);
        container.append(block);
        blocks.set(i, body);
      }
      return blocks.get(i);
    };
    return {
      token(d) {
        const idx = tokenSample(d);
        get(idx).append(makeTok(d));
        if (!toks.has(idx)) toks.set(idx, []);
        toks.get(idx).push(d);
      },
      tokens(i) {
        return toks.get(i) || [];
      },
      count() {
        return blocks.size;
      },
    };
  }

  // ------------------------------------------------------------- result views
  function className(run, label) {
    if (label === null || label === undefined) return null;
    const c = run && run.classes && run.classes[label];
    return c !== undefined ? c : String(label);
  }

  /** An <audio> player of a sound run's clip (a data: URI of a WAV, as the server sends it). */
  function audioPlayer(src, what) {
    return el('audio', { class: 'sample-audio', controls: true, preload: 'auto', src, 'aria-label': `play ${what}` });
  }

  /** A said text: its (wide) spectrogram and the joined clip. */
  function sayCard(item, run) {
    const meta = item.meta || {};
    const card = el('div', { class: 'sample say-sample', 'data-index': 0, 'data-kind': 'say' });
    const text = item.text !== undefined ? item.text : meta.text || '';
    card.append(
      el('div', { class: 'say-spec' }, el('img', { class: 'pix say-img', src: item.png, alt: `spectrogram of “${text}”` })),
      el('p', { class: 'caption' }, `“${text}”`, item.seconds !== undefined ? ` · ${fmt(item.seconds)} s` : '', ' · one generated clip a character'),
      audioPlayer(item.wav, `“${text}”`)
    );
    const base = `${fileBase(run.id, meta, 0)}-${String(text).replace(/[^A-Za-z0-9]+/g, '_').slice(0, 32)}`;
    card.append(el('div', { class: 'links' },
      el('a', { href: item.wav, download: `${base}.wav`, class: 'dl', title: '16-bit PCM WAV' }, 'WAV'),
      el('a', { href: item.png, download: `${base}.png`, class: 'dl', title: 'PNG with its provenance inside' }, 'PNG'),
      blobLink(meta, `${base}.json`, 'JSON')));
    return card;
  }

  /** Whether a run can say a text: trained on sound, conditioned on one-character classes. */
  function canSay(run) {
    return !!(run && run.audio && run.conditional && run.kind === 'images' && (run.classes || []).length && run.classes.every((c) => String(c).length === 1));
  }

  function imageCard(item, run, o = {}) {
    const meta = item.meta || {};
    const idx = meta.index !== undefined ? meta.index : item.i;
    const card = el('div', { class: 'sample', 'data-index': idx, 'data-kind': 'image' });
    const lab = className(run, item.label);
    const img = el('img', { class: 'pix sample-img', src: item.png, alt: `sample ${idx}` });
    const figs = el('div', { class: 'sample-figs' }, el('figure', { class: 'sample-fig' }, img, el('figcaption', { class: 'caption' }, `#${idx}`, lab !== null ? ` · ${lab}` : '')));
    const nov = item.novelty;
    if (nov) {
      const title = `nearest training image: distance ${fmt(nov.distance)} vs copy threshold ${fmt(nov.threshold)} (a copy is closer than the threshold)`;
      const near = el('img', { class: 'pix nearest', src: nov.nearest, alt: 'nearest training image', title });
      const verdict = el('span', { class: nov.copy ? 'verdict copy' : 'verdict novel', title }, nov.copy ? 'copy' : 'new');
      figs.append(el('figure', { class: 'nearest-fig' }, near, el('figcaption', { class: 'caption' }, 'nearest'), verdict));
    }
    card.append(figs);
    // a prompt run's card says what it was drawn from (unless the batch caption says it for all)
    const cut = typeof item.prompt_read === 'string' && item.prompt_read !== item.prompt;
    if (typeof item.prompt === 'string' && (o.prompt !== false || cut)) card.append(promptLine(item.prompt, item.prompt_read));
    const base = fileBase(run.id, meta, idx);
    if (item.wav) card.append(audioPlayer(item.wav, `sample ${idx}`));
    const links = el('div', { class: 'links' },
      el('a', { href: item.png, download: `${base}.png`, class: 'dl', title: 'PNG with its provenance inside' }, 'PNG'),
      item.wav ? el('a', { href: item.wav, download: `${base}.wav`, class: 'dl', title: '16-bit PCM WAV' }, 'WAV') : null,
      blobLink(meta, `${base}.json`, 'JSON'));
    card.append(links);
    if (o.pickable) {
      card.classList.add('pickable');
      card.tabIndex = 0;
      card.title = exploreKind(run) === 'latent' ? 'click to pick as A / B for Explore' : 'click to pick the sample the strip redraws';
      const toggle = (ev) => {
        if (ev.target instanceof Element && ev.target.closest('a')) return;
        togglePick(idx);
      };
      card.addEventListener('click', toggle);
      card.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          togglePick(idx);
        }
      });
    }
    return card;
  }

  /** What a sample was drawn from: its prompt, and what the model read of it when the
   * prompt was longer than its text encoder's context. */
  function promptLine(prompt, read) {
    const box = el('div', { class: 'sample-prompts' }, el('p', { class: 'sample-prompt', title: prompt }, `“${prompt}”`));
    if (typeof read === 'string' && read !== prompt) {
      const why = `longer than the model's text encoder reads: it read “${read}”`;
      box.append(el('p', { class: 'prompt-cut', title: why }, `cut: read as “${read}”`));
    }
    return box;
  }

  /** The prompts of a batch in a few words: “p”, or how many there are in turn. */
  function promptSummary(controls) {
    const bits = [];
    const p = controls && controls.prompt;
    if (Array.isArray(p)) bits.push(`${p.length} prompts in turn`);
    else if (typeof p === 'string') bits.push(`“${p}”`);
    const neg = controls && controls.negative_prompt;
    if (Array.isArray(neg)) bits.push(`${neg.length} negative prompts`);
    else if (typeof neg === 'string') bits.push(`not “${neg}”`);
    return bits;
  }

  /** The copied span as code-point offsets into text ([null, null] when none). */
  function spanRange(text, nov) {
    if (!nov || !(nov.span_words > 0)) return [null, null];
    let start = nov.start;
    let end = nov.end;
    if ((typeof start !== 'number' || typeof end !== 'number') && nov.span) {
      const at = (text || '').indexOf(nov.span);
      if (at < 0) return [null, null];
      start = Array.from(text.slice(0, at)).length;
      end = start + Array.from(nov.span).length;
    }
    return typeof start === 'number' && typeof end === 'number' && end > start ? [start, end] : [null, null];
  }

  /** The text as its streamed token spans, the copied span inside a <mark>; null when the
   * tokens do not spell the text. */
  function tokenText(text, nov, toks) {
    if (!toks || !toks.length) return null;
    const joined = toks.map((d) => d.text).join('');
    if (!text || !joined.startsWith(text)) return null;
    const [start, end] = spanRange(text, nov);
    const total = Array.from(text).length;
    const frag = document.createDocumentFragment();
    let pos = 0;
    let mark = null;
    for (const d of toks) {
      if (pos >= total) break;
      let cps = Array.from(d.text);
      if (pos + cps.length > total) cps = cps.slice(0, total - pos);
      const cuts = [0, cps.length];
      if (start !== null) {
        for (const c of [start - pos, end - pos]) if (c > 0 && c < cps.length) cuts.push(c);
      }
      cuts.sort((a, b) => a - b);
      for (let k = 0; k < cuts.length - 1; k++) {
        const a = cuts[k];
        const b = cuts[k + 1];
        if (a === b) continue;
        const span = makeTok(d, cps.slice(a, b).join(''));
        const inside = start !== null && pos + a >= start && pos + a < end;
        if (inside) {
          if (!mark) {
            mark = el('mark', { title: 'copied from the training text' });
            frag.append(mark);
          }
          mark.append(span);
        } else {
          mark = null;
          frag.append(span);
        }
      }
      pos += cps.length;
    }
    return frag;
  }

  function highlightedText(text, nov) {
    const frag = document.createDocumentFragment();
    const cps = Array.from(text || '');
    const [start, end] = spanRange(text, nov);
    if (start !== null) {
      frag.append(document.createTextNode(cps.slice(0, start).join('')));
      const mark = el('mark', { title: 'copied from the training text' });
      mark.append(document.createTextNode(cps.slice(start, end).join('')));
      frag.append(mark, document.createTextNode(cps.slice(end).join('')));
    } else {
      frag.append(document.createTextNode(text || ''));
    }
    return frag;
  }

  function textCard(item, run, toks) {
    const meta = item.meta || {};
    const idx = meta.index !== undefined ? meta.index : item.i;
    const card = el('div', { class: 'sample text-sample text-item', 'data-index': idx, 'data-kind': 'text' });
    const body = el('div', { class: 'text-body' });
    if (item.prompt) body.append(el('span', { class: 'prompt' }, item.prompt));
    body.append(el('span', { class: 'continuation' }, tokenText(item.text, item.novelty, toks) || highlightedText(item.text, item.novelty)));
    card.append(body);
    const nov = item.novelty;
    const foot = el('div', { class: 'links' });
    if (nov) {
      foot.append(el('span', { class: `caption copy-caption${nov.span_words >= 8 ? ' warn' : ''}` }, `longest span copied from the training text: ${nov.span_words} words`));
    }
    const base = fileBase(run.id, meta, idx);
    foot.append(blobLink({ prompt: item.prompt || '', text: item.text, meta }, `${base}.json`, 'download .json'));
    card.append(foot);
    return card;
  }

  // ----------------------------------------------------------- preview area
  function showPreview(d) {
    const imgs = d.images || [];
    if (!imgs.length) return;
    show($('#live'), true);
    show($('#preview-area'), true);
    $('#preview').src = imgs[0];
    $('#preview-caption').textContent = `step ${d.step} / ${d.total}: the model's current guess of the clean image`;
    const grid = $('#preview-grid');
    if (imgs.length > 1) {
      while (grid.children.length > imgs.length) grid.lastChild.remove();
      imgs.forEach((src, i) => {
        let im = grid.children[i];
        if (!im) {
          im = el('img', { class: 'pix', alt: `preview ${i}` });
          grid.append(im);
        }
        im.src = src;
      });
    } else {
      clear(grid);
    }
  }

  // --------------------------------------------------------------- generate
  function readSeedN(seedSel, nSel) {
    const seedRaw = $(seedSel).value.trim();
    const nRaw = $(nSel).value.trim();
    const seed = seedRaw === '' ? 0 : Number(seedRaw);
    const n = nRaw === '' ? 1 : Number(nRaw);
    if (!Number.isInteger(seed) || seed < 0) throw new Error('seed: a whole number ≥ 0');
    if (!Number.isInteger(n) || n < 1) throw new Error('n: a whole number ≥ 1');
    return { seed, n };
  }

  function queueText(pos) {
    return pos ? `queued: ${pos} job${pos === 1 ? '' : 's'} ahead…` : 'queued: next in line…';
  }

  function setBusy(on) {
    $('#generate').disabled = on;
    if (!on) updateGenerateEnabled();
    $('#cancel').disabled = !on;
    $('#run').disabled = on;
    for (const b of ['#interpolate', '#variations', '#strip']) if (on) $(b).disabled = true;
    if ($('#say')) $('#say').disabled = on;
    if (!on) updateExploreButtons();
    $('#gen-form').classList.toggle('busy', on);
  }

  /**
   * Start a studio job. extra: mode fields; o.controls: controls to send (else the form's);
   * o.batch: {seed, n, controls} to use instead of the form; o.restoreIndex: highlight it.
   */
  async function studioGenerate(extra = {}, o = {}) {
    if (S.job || !S.run) return;
    const run = S.run;
    const statusEl = $('#status');
    let body;
    try {
      const batch = o.batch || Object.assign(readSeedN('#seed', '#n'), { controls: o.controls || readControls($('#controls'), run, STUDIO) });
      body = Object.assign({ run: run.id, seed: batch.seed, n: batch.n, controls: batch.controls, mode: 'sample' }, extra);
      if (!$('#save').checked) body.save = false;
      if (run.takes_prompt && !(body.controls && body.controls.prompt)) {
        const box = $('#controls [name="prompt"]');
        if (box) box.focus();
        throw new Error('prompt: say what to draw, e.g. “a small red circle, top left”');
      }
    } catch (e) {
      setStatus(statusEl, e.message, 'error');
      return;
    }
    const mode = body.mode;
    const toExplore = mode !== 'sample' && mode !== 'say';
    const progress = $('#progress');
    progress.value = 0;
    progress.max = 1;
    if (!o.keepStatus) setStatus(statusEl, 'submitting…', 'busy');
    // live area
    clear($('#preview-grid'));
    $('#preview').removeAttribute('src');
    show($('#preview-area'), false);
    const isText = run.kind === 'text';
    let streamView = null;
    if (isText) {
      show($('#live'), true);
      show($('#stream'), true);
      streamView = makeStreamView($('#stream'), (body.controls && body.controls.prompt) || '', body.n);
    } else {
      show($('#stream'), false);
      show($('#live'), false);
    }
    if (!toExplore) {
      // a new batch: the old one goes (its picks with it) so nothing stale sits beside the work
      S.lastBatch = null;
      S.picks = [];
      clear($('#results'));
      show($('#results-card'), false);
      clear($('#explore-out'));
    }
    setBusy(true);
    const started = performance.now();
    const note = o.keepStatus ? `${statusEl.textContent} ` : '';
    let job;
    try {
      job = await runJob(body, {
        queued(pos) {
          setStatus(statusEl, `${note}${queueText(pos)}`, 'busy');
        },
        start() {
          setStatus(statusEl, `${note}running…`, 'busy');
        },
        progress(d) {
          if (d.total) {
            progress.max = d.total;
            progress.value = d.done;
            setStatus(statusEl, `${note}running… ${d.done} / ${d.total}`, 'busy');
          }
        },
        preview: showPreview,
        token(d) {
          if (streamView) streamView.token(d);
        },
        result(d) {
          progress.value = progress.max;
          const items = d.items || [];
          if (toExplore) drawExploreOut(run, body, items);
          else drawResults(run, body, d, items, streamView);
          if (isText && !toExplore) show($('#live'), false); // the result shows the same token spans
          const secs = d.seconds !== undefined ? ` in ${fmt(d.seconds)} s` : ` in ${fmt((performance.now() - started) / 1000)} s`;
          const what = isText ? 'text' : run.audio ? 'clip' : 'image';
          const said = mode === 'say' ? `said “${body.text}”` : `${items.length} ${what}${items.length === 1 ? '' : 's'}`;
          setStatus(statusEl, `${note}${said}${secs}.`, o.keepStatus && statusEl.classList.contains('warn') ? 'warn' : 'ok');
          if (o.restoreIndex !== undefined && o.restoreIndex !== null) markRestored(toExplore ? $('#explore-out') : $('#results'), o.restoreIndex);
          loadGallery();
        },
        error(msg) {
          setStatus(statusEl, `error: ${msg}`, 'error');
        },
        cancelled() {
          setStatus(statusEl, 'cancelled.', 'warn');
        },
        done(outcome) {
          S.job = null;
          setBusy(false);
          if (outcome === 'lost') setStatus(statusEl, 'lost the connection to the server; the job was stopped.', 'error');
          else if (outcome === 'done' && !statusEl.classList.contains('ok')) setStatus(statusEl, 'finished without a result.', 'warn');
        },
      });
      S.job = job;
    } catch (e) {
      setBusy(false);
      setStatus(statusEl, e.message, 'error');
    }
  }

  function drawResults(run, body, d, items, streamView) {
    S.lastBatch = { seed: body.seed, n: body.n, controls: body.controls };
    S.picks = [];
    revokeBlobs();
    const box = clear($('#results'));
    box.classList.toggle('text-results', run.kind === 'text');
    const said = body.mode === 'say';
    if (said) S.lastBatch = null; // a said text is no batch to explore
    for (const item of items) {
      box.append(
        run.kind === 'text'
          ? textCard(item, run, streamView ? streamView.tokens(item.i) : null)
          : said
            ? sayCard(item, run)
            : imageCard(item, run, { pickable: exploreKind(run) !== null, prompt: new Set(items.map((it) => it.prompt)).size > 1 })
      );
    }
    show($('#results-card'), true);
    $('#results-title').textContent = run.kind === 'text' ? 'Texts' : said ? 'Said' : run.audio ? 'Clips' : 'Samples';
    const cap = $('#results-caption');
    const ctl = Object.entries(body.controls || {})
      .filter(([k, v]) => k !== 'prompt' && !isPromptBox(run, k) && !(run.controls[k] && JSON.stringify(run.controls[k].default) === JSON.stringify(v)))
      .map(([k, v]) => `${pretty(k)} ${Array.isArray(v) ? v.map((x) => JSON.stringify(x)).join(' ') : v}`);
    if (run.takes_prompt) ctl.unshift(...promptSummary(body.controls));
    const copies = items.filter((it) => it.novelty && it.novelty.copy).length;
    const extra = run.kind === 'images' && items.some((it) => it.novelty) ? ` · ${copies} of ${items.length} closer to a training image than the copy threshold` : '';
    cap.textContent = said
      ? `${run.id} · seed ${body.seed}${ctl.length ? ` · ${ctl.join(', ')}` : ''}`
      : `${run.id} · seed ${body.seed} · n ${body.n}${ctl.length ? ` · ${ctl.join(', ')}` : ''}${extra}`;
    updateExploreButtons();
  }

  function markRestored(container, index) {
    const node = $$('[data-index]', container).find((c) => String(c.dataset.index) === String(index));
    if (node) {
      node.classList.add('restored');
      node.scrollIntoView({ block: 'center', behavior: 'smooth' });
    }
  }

  // ------------------------------------------------------------------ explore
  function stripNames(run) {
    return ['guidance', 'sampling_steps'].filter((n) => controlApplies(run, n));
  }
  /** "latent" (interpolate, variations), "strip" (one seed across a setting) or null. */
  function exploreKind(run) {
    if (run.kind !== 'images') return null;
    if (run.has_latent) return 'latent';
    return stripNames(run).length ? 'strip' : null;
  }

  function setupExplore(run) {
    const latent = exploreKind(run) === 'latent';
    const strip = exploreKind(run) === 'strip';
    show($('#explore'), latent || strip);
    show($('#explore-latent'), latent);
    show($('#explore-strip'), strip);
    clear($('#explore-out'));
    const sel = clear($('#strip-name'));
    const names = stripNames(run);
    for (const n of names) sel.append(el('option', { value: n }, pretty(n)));
    if (names.length) {
      sel.value = names.includes('sampling_steps') ? 'sampling_steps' : names[0];
      $('#strip-values').value = defaultStripValues(sel.value);
    }
    updateExploreButtons();
  }
  function defaultStripValues(name) {
    return name === 'guidance' ? '1, 1.5, 2, 3, 5' : '5, 10, 20, 50';
  }
  $('#strip-name').addEventListener('change', () => {
    $('#strip-values').value = defaultStripValues($('#strip-name').value);
  });

  function togglePick(idx) {
    const i = S.picks.indexOf(idx);
    const most = S.run && exploreKind(S.run) === 'latent' ? 2 : 1;
    if (i >= 0) S.picks.splice(i, 1);
    else {
      S.picks.push(idx);
      while (S.picks.length > most) S.picks.shift();
    }
    updateExploreButtons();
  }

  function updateExploreButtons() {
    for (const card of $$('#results .sample')) {
      const idx = Number(card.dataset.index);
      const k = S.picks.indexOf(idx);
      card.classList.toggle('picked', k >= 0);
      let badge = card.querySelector('.pick-badge');
      if (k >= 0) {
        if (!badge) {
          badge = el('span', { class: 'pick-badge' });
          card.append(badge);
        }
        badge.textContent = k === 0 ? 'A' : 'B';
      } else if (badge) badge.remove();
    }
    const busy = !!S.job;
    const haveBatch = !!S.lastBatch;
    $('#interpolate').disabled = busy || !haveBatch || S.picks.length !== 2;
    $('#variations').disabled = busy || !haveBatch || S.picks.length < 1;
    $('#strip').disabled = busy;
    const sIdx = S.picks.length ? S.picks[0] : 0;
    $('#strip-hint').textContent = `Sample #${sIdx} redrawn with each value (same seed, same batch). Click a sample above to choose another.`;
    const hint = $('#explore-hint');
    if (!haveBatch) hint.textContent = 'Generate samples, then click two of them to pick A and B.';
    else if (!S.picks.length) hint.textContent = 'Click two samples above to pick A and B.';
    else if (S.picks.length === 1) hint.textContent = `A = #${S.picks[0]}; pick B for an interpolation, or make variations of A.`;
    else hint.textContent = `A = #${S.picks[0]}, B = #${S.picks[1]}.`;
  }

  $('#frames').addEventListener('input', () => {
    $('#frames-out').textContent = $('#frames').value;
  });
  $('#spread').addEventListener('input', () => {
    $('#spread-out').textContent = $('#spread').value;
  });
  $('#interpolate').addEventListener('click', () => {
    if (S.picks.length !== 2 || !S.lastBatch) return;
    studioGenerate({ mode: 'interpolate', a: S.picks[0], b: S.picks[1], frames: Number($('#frames').value) }, { batch: S.lastBatch });
  });
  $('#variations').addEventListener('click', () => {
    if (!S.picks.length || !S.lastBatch) return;
    studioGenerate(
      { mode: 'variations', index: S.picks[0], spread: Number($('#spread').value), count: Number($('#count').value) },
      { batch: S.lastBatch }
    );
  });
  $('#strip').addEventListener('click', () => {
    const name = $('#strip-name').value;
    const parts = $('#strip-values').value.split(/[\s,;]+/).filter(Boolean);
    const values = parts.map(Number);
    if (!values.length || values.some((v) => !Number.isFinite(v))) {
      setStatus($('#status'), 'strip: give a list of numbers, e.g. 5, 10, 20', 'error');
      return;
    }
    const extra = { mode: 'strip', vary: { name, values }, index: S.picks.length ? S.picks[0] : 0 };
    if (S.lastBatch) studioGenerate(extra, { batch: S.lastBatch });
    else studioGenerate(extra);
  });

  function drawExploreOut(run, body, items) {
    const out = clear($('#explore-out'));
    let title = '';
    let labels = [];
    if (body.mode === 'interpolate') {
      title = `Interpolation #${body.a} → #${body.b}, ${items.length} frames`;
      labels = items.map((_, k) => (k === 0 ? `A #${body.a}` : k === items.length - 1 ? `B #${body.b}` : `${k}`));
    } else if (body.mode === 'variations') {
      title = `Variations of #${body.index} (spread ${body.spread})`;
      labels = items.map((_, k) => `${k + 1}`);
    } else if (body.mode === 'strip') {
      title = `#${body.index} with ${pretty(body.vary.name)} = ${body.vary.values.join(', ')}`;
      labels = items.map((it, k) => {
        const v = it.value !== undefined ? it.value : body.vary.values[k];
        return fmt(v);
      });
    } else {
      title = body.mode;
    }
    out.append(el('h4', null, title));
    const row = el('div', { class: body.mode === 'variations' ? 'frames wrap' : 'frames' });
    items.forEach((item, k) => {
      const meta = item.meta || {};
      const idx = meta.index !== undefined ? meta.index : item.i;
      const base = fileBase(run.id, meta, idx);
      const fig = el('figure', { class: 'frame', 'data-index': idx });
      const a = el('a', { href: item.png, download: `${base}.png`, title: `download ${base}.png` }, el('img', { class: 'pix', src: item.png, alt: labels[k] || `frame ${k}` }));
      fig.append(a, el('figcaption', { class: 'caption' }, labels[k] || String(k)));
      if (item.wav) fig.append(audioPlayer(item.wav, labels[k] || `frame ${k}`));
      row.append(fig);
    });
    out.append(row);
    out.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  // ---------------------------------------------------------------- gallery
  let galleryToken = 0;
  async function loadGallery() {
    const run = S.run;
    if (!run) return;
    const my = ++galleryToken;
    const box = $('#gallery');
    let data;
    try {
      data = await api(`/api/runs/${enc(run.id)}/gallery`);
    } catch (e) {
      if (my === galleryToken) {
        clear(box).append(el('p', { class: 'caption' }, `gallery unavailable: ${e.message}`));
      }
      return;
    }
    if (my !== galleryToken || !S.run || S.run.id !== run.id) return;
    clear(box);
    const items = (data && data.items) || [];
    box.classList.toggle('text-gallery', run.kind === 'text');
    if (!items.length) {
      box.append(el('p', { class: 'caption' }, 'Nothing saved yet: generated outputs appear here.'));
      return;
    }
    for (const it of items) {
      const meta = it.meta || {};
      const said = meta.controls && typeof meta.controls.prompt === 'string' && it.png ? `“${meta.controls.prompt}” · ` : '';
      const tip = `${said}seed ${meta.seed} · #${meta.index}${meta.mode && meta.mode !== 'sample' ? ` · ${meta.mode}` : ''}${meta.step !== undefined ? ` · step ${meta.step}` : ''} · ${it.file}`;
      const btn = el('button', { type: 'button', class: 'gallery-item', title: `${tip}\nclick to re-create` });
      if (it.png) btn.append(el('img', { class: 'pix', src: it.png, alt: it.file }));
      else btn.append(el('span', { class: 'gallery-text' }, it.prompt ? el('span', { class: 'prompt' }, it.prompt.slice(-60)) : null, (it.text || '').slice(0, 200)));
      btn.addEventListener('click', () => restoreMeta(meta, { run_known: S.byId.has(meta.run), weights_match: weightsMatch(meta) }, `gallery ${it.file}`));
      box.append(btn);
    }
  }

  // ------------------------------------------------------------- restore/drop
  function weightsMatch(meta) {
    const r = S.byId.get(meta.run);
    if (!r || !meta.weights_sha256 || !r.weights_sha256) return true;
    return r.weights_sha256 === meta.weights_sha256;
  }

  function fileToBase64(file) {
    return new Promise((resolve, reject) => {
      const fr = new FileReader();
      fr.onload = () => {
        const s = String(fr.result);
        resolve(s.slice(s.indexOf(',') + 1));
      };
      fr.onerror = () => reject(new Error('could not read the file'));
      fr.readAsDataURL(file);
    });
  }

  /** Whether a PNG carries a "genlab" text chunk: "yes", "no" or "not-png" (read here, so a
   * plain picture is answered without a round trip). */
  async function pngProvenance(file) {
    const buf = new Uint8Array(await file.arrayBuffer());
    const sig = [137, 80, 78, 71, 13, 10, 26, 10];
    if (buf.length < 8 || sig.some((b, i) => buf[i] !== b)) return 'not-png';
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let off = 8;
    while (off + 8 <= buf.length) {
      const len = dv.getUint32(off);
      const type = String.fromCharCode(buf[off + 4], buf[off + 5], buf[off + 6], buf[off + 7]);
      const data = off + 8;
      if (type === 'tEXt' || type === 'iTXt' || type === 'zTXt') {
        let key = '';
        for (let k = data; k < Math.min(data + len, data + 80, buf.length) && buf[k] !== 0; k++) key += String.fromCharCode(buf[k]);
        if (key === 'genlab') return 'yes';
      }
      if (type === 'IEND') break;
      off = data + len + 4;
    }
    return 'no';
  }

  async function restoreFile(file) {
    const msg = $('#drop-msg');
    if (!file) return;
    if (S.job) {
      setStatus(msg, 'A job is running: cancel it or wait, then drop again.', 'warn');
      return;
    }
    setStatus(msg, `reading ${file.name}…`, 'busy');
    const name = (file.name || '').toLowerCase();
    try {
      if (file.type === 'image/png' || name.endsWith('.png')) {
        const has = await pngProvenance(file);
        if (has === 'not-png') throw new Error(`${file.name} is not a PNG.`);
        if (has === 'no') {
          throw new Error(`${file.name} has no genlab provenance (it was not saved from the studio, or an editor dropped its text chunks).`);
        }
        const b64 = await fileToBase64(file);
        const res = await api('/api/provenance', { png: b64 });
        if (!res || !res.meta) throw new Error(`${file.name} has no genlab provenance.`);
        await restoreMeta(res.meta, { run_known: res.run_known, weights_match: res.weights_match }, file.name);
      } else if (file.type === 'application/json' || name.endsWith('.json')) {
        let obj;
        try {
          obj = JSON.parse(await file.text());
        } catch (e) {
          throw new Error(`${file.name} is not valid JSON.`);
        }
        const meta = obj && typeof obj === 'object' ? (obj.meta && typeof obj.meta === 'object' ? obj.meta : obj.genlab ? obj : null) : null;
        if (!meta || !meta.genlab || !meta.run) throw new Error(`${file.name} has no genlab provenance (no "meta" with "genlab" and "run").`);
        await restoreMeta(meta, { run_known: S.byId.has(meta.run), weights_match: weightsMatch(meta) }, file.name);
      } else {
        throw new Error(`${file.name}: drop a PNG or a .json saved from genlab.`);
      }
    } catch (e) {
      setStatus(msg, e.message, 'error');
    }
  }

  const MODE_FIELDS = { interpolate: ['a', 'b', 'frames'], variations: ['spread', 'count'], strip: ['vary'], say: ['text'] };

  async function restoreMeta(meta, info, source) {
    const msg = $('#drop-msg');
    if (S.job) {
      setStatus(msg, 'A job is running: cancel it or wait first.', 'warn');
      return;
    }
    if (!info.run_known || !S.byId.has(meta.run)) {
      setStatus(msg, `${source} was made by run "${meta.run}", which this server does not serve.`, 'error');
      return;
    }
    showTab('studio');
    if (!S.run || S.run.id !== meta.run) await selectRun(meta.run, { keepN: true });
    const run = S.run;
    $('#seed').value = String(meta.seed !== undefined ? meta.seed : 0);
    $('#n').value = String(meta.n !== undefined ? meta.n : 1);
    const controls = cleanControls(run, meta.controls);
    writeControls($('#controls'), run, STUDIO, controls);
    const mode = meta.mode || 'sample';
    const extra = { mode };
    if (mode !== 'sample') {
      for (const k of MODE_FIELDS[mode] || []) if (meta[k] !== undefined && meta[k] !== null) extra[k] = meta[k];
      // meta.index is the output's place in the row; the batch sample it came from is index_of
      if (mode === 'variations' || mode === 'strip') {
        extra.index = typeof meta.index_of === 'number' ? meta.index_of : 0;
      }
      if (mode === 'say' && $('#say-text')) $('#say-text').value = String(extra.text || '');
      if (mode === 'interpolate' || mode === 'variations') {
        if (mode === 'interpolate') $('#frames').value = String(extra.frames || 8);
        if (mode === 'variations' && extra.spread !== undefined) $('#spread').value = String(extra.spread);
      }
    }
    let text = `Re-creating ${source}: run ${meta.run}, seed ${meta.seed}, #${meta.index}${mode !== 'sample' ? ` (${mode})` : ''}.`;
    let kind = 'ok';
    if (info.weights_match === false) {
      const why = meta.step !== undefined && run.step !== undefined && meta.step !== run.step ? `step ${meta.step} then, step ${run.step} now` : 'the weights file is not the same';
      text = `${source} was made with other weights than run ${meta.run} has now (${why}): the re-created output will differ.`;
      kind = 'warn';
    }
    setStatus(msg, text, kind);
    const restoreIndex = meta.index !== undefined ? meta.index : null;
    await studioGenerate(extra, {
      batch: { seed: Number(meta.seed) || 0, n: Number(meta.n) || 1, controls },
      restoreIndex,
    });
  }

  const drop = $('#drop');
  ['dragenter', 'dragover'].forEach((t) =>
    drop.addEventListener(t, (ev) => {
      ev.preventDefault();
      drop.classList.add('over');
    })
  );
  ['dragleave', 'dragend'].forEach((t) => drop.addEventListener(t, () => drop.classList.remove('over')));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
    restoreFile(f);
  });
  // a file dropped beside the zone must not navigate away from the page
  window.addEventListener('dragover', (ev) => ev.preventDefault());
  window.addEventListener('drop', (ev) => ev.preventDefault());
  $('#restore-file').addEventListener('change', (ev) => {
    const f = ev.target.files && ev.target.files[0];
    restoreFile(f).finally(() => {
      ev.target.value = '';
    });
  });

  // -------------------------------------------------------------------- say
  /** The "say" box of a digit-conditioned sound run: a text in, one clip a character out. */
  function makeSayBox() {
    const classes = el('p', { class: 'caption', id: 'say-classes' });
    const box = el('div', { class: 'field say-box', id: 'say-box', hidden: true },
      el('label', { for: 'say-text', class: 'control-label' }, 'say'),
      el('div', { class: 'inline' },
        el('input', { type: 'text', id: 'say-text', name: 'say-text', maxlength: 32, placeholder: 'e.g. 2026', spellcheck: 'false', autocomplete: 'off' }),
        el('button', { type: 'button', id: 'say' }, 'Say')),
      classes);
    const actions = $('#gen-form .actions');
    actions.parentNode.insertBefore(box, actions);
    $('#say').addEventListener('click', sayText);
    $('#say-text').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault(); // not the form's Generate
        sayText();
      }
    });
  }
  function setupSay(run) {
    const on = canSay(run);
    show($('#say-box'), on);
    if (on) $('#say-classes').textContent = `One generated clip for each character (${run.classes.join(' ')}), joined: the seed and controls above apply.`;
  }
  function sayText() {
    const run = S.run;
    if (!canSay(run) || S.job) return;
    const text = $('#say-text').value.trim();
    if (!text) {
      setStatus($('#status'), 'say: type the characters to speak, e.g. 2026', 'error');
      return;
    }
    const missing = Array.from(text).find((c) => !/\s/.test(c) && !run.classes.some((k) => String(k).toLowerCase() === c.toLowerCase()));
    if (missing !== undefined) {
      setStatus($('#status'), `say: this run has no class for "${missing}"; its classes: ${run.classes.join(', ')}`, 'error');
      return;
    }
    let controls;
    try {
      controls = readControls($('#controls'), run, STUDIO);
    } catch (e) {
      setStatus($('#status'), e.message, 'error');
      return;
    }
    delete controls.label; // the text picks the classes
    studioGenerate({ mode: 'say', text }, { controls });
  }
  makeSayBox();

  // ------------------------------------------------------------- studio wiring
  $('#run').addEventListener('change', () => selectRun($('#run').value));
  $('#dice').addEventListener('click', () => {
    $('#seed').value = String(randomSeed());
  });
  $('#gen-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    studioGenerate();
  });
  $('#gen-form').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      studioGenerate();
    }
  });
  $('#cancel').addEventListener('click', () => {
    if (S.job) {
      setStatus($('#status'), 'cancelling…', 'busy');
      S.job.cancel();
    }
  });

  // ================================================================ COMPARE
  const COMPARE = { attr: 'compare-control', prefix: 'compare-' };
  const C = { jobs: [], busy: false, shared: null };

  /** Whether two runs can be set side by side: the same kind, and both drawing what a
   * prompt says or neither (the same prompt goes to both). */
  function sameKind(a, b) {
    return a.kind === b.kind && !!a.takes_prompt === !!b.takes_prompt;
  }

  function fillCompareSelects() {
    const a = $('#compare-a');
    fillRunSelect(a, S.runs);
    fillCompareB();
  }
  function fillCompareB() {
    const ra = S.byId.get($('#compare-a').value);
    const b = $('#compare-b');
    const prev = b.value;
    const others = S.runs.filter((r) => ra && sameKind(r, ra) && r.id !== ra.id);
    fillRunSelect(b, others, prev);
    if (!others.length) b.append(el('option', { value: '' }, `no other ${ra ? (ra.takes_prompt ? 'prompt' : ra.kind) : ''} run`));
    drawCompareControls();
  }
  function compareShared() {
    const ra = S.byId.get($('#compare-a').value);
    const rb = S.byId.get($('#compare-b').value);
    if (!ra || !rb) return null;
    const names = Object.keys(ra.controls || {}).filter((n) => controlApplies(ra, n) && rb.controls && rb.controls[n] && controlApplies(rb, n));
    // class names must agree for a shared label
    const only = names.filter((n) => n !== 'label' || JSON.stringify(ra.classes) === JSON.stringify(rb.classes));
    return { ra, rb, only };
  }
  function drawCompareControls() {
    const sh = compareShared();
    C.shared = sh;
    const box = $('#compare-controls');
    if (!sh) {
      clear(box);
      $('#compare-generate').disabled = true;
      return;
    }
    drawControls(box, sh.ra, Object.assign({ only: sh.only }, COMPARE));
    $('#compare-n').value = sh.ra.kind === 'text' ? '1' : '16';
    $('#compare-generate').disabled = C.busy;
    drawCompareSide($('#compare-left'), sh.ra);
    drawCompareSide($('#compare-right'), sh.rb);
  }
  function drawCompareSide(box, run) {
    clear(box);
    const r = S.byId.get(run.id) || run;
    box.append(
      el('h3', null, run.name || run.id, el('span', { class: 'caption' }, ` ${run.family} · step ${run.step}`)),
      el('div', { class: 'compare-eval' }),
      el('progress', { class: 'side-progress', value: 0, max: 1 }),
      el('p', { class: 'status side-status', role: 'status' }),
      el('div', { class: 'side-live' }),
      el('div', { class: 'side-results results' })
    );
    drawEval($('.compare-eval', box), r);
  }
  $('#compare-a').addEventListener('change', fillCompareB);
  $('#compare-b').addEventListener('change', drawCompareControls);
  $('#compare-dice').addEventListener('click', () => {
    $('#compare-seed').value = String(randomSeed());
  });
  $('#compare-cancel').addEventListener('click', () => {
    for (const j of C.jobs) if (j) j.cancel();
  });
  $('#compare-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (C.busy) return;
    const sh = C.shared;
    const st = $('#compare-status');
    if (!sh) {
      setStatus(st, 'pick two runs of the same kind', 'error');
      return;
    }
    let seedN;
    let controls;
    try {
      seedN = readSeedN('#compare-seed', '#compare-n');
      controls = readControls($('#compare-controls'), sh.ra, COMPARE);
    } catch (e) {
      setStatus(st, e.message, 'error');
      return;
    }
    setStatus(st, `generating ${sh.ra.id} and ${sh.rb.id} with seed ${seedN.seed}…`, 'busy');
    $('#compare-generate').disabled = true;
    $('#compare-cancel').disabled = false;
    const sides = [
      [$('#compare-left'), sh.ra],
      [$('#compare-right'), sh.rb],
    ];
    let pending = sides.length;
    C.busy = true;
    C.jobs = [];
    const finished = () => {
      pending -= 1;
      if (pending === 0) {
        C.busy = false;
        C.jobs = [];
        $('#compare-generate').disabled = false;
        $('#compare-cancel').disabled = true;
        if (!st.classList.contains('error')) setStatus(st, `seed ${seedN.seed}, n ${seedN.n}: both finished.`, 'ok');
      }
    };
    sides.forEach(([box, run]) => {
      drawCompareSide(box, run);
      const body = { run: run.id, seed: seedN.seed, n: seedN.n, controls: cleanControls(run, controls), mode: 'sample' };
      compareJob(box, run, body, finished).then((job) => {
        if (job && !job.finished) C.jobs.push(job);
      });
    });
  });

  async function compareJob(box, run, body, onDone) {
    const st = $('.side-status', box);
    const prog = $('.side-progress', box);
    const live = $('.side-live', box);
    const res = $('.side-results', box);
    res.classList.toggle('text-results', run.kind === 'text');
    let stream = null;
    let pimg = null;
    if (run.kind === 'text') {
      const sv = el('div', { class: 'stream' });
      live.append(sv);
      stream = makeStreamView(sv, body.controls.prompt || '', body.n);
    }
    try {
      return await runJob(body, {
        queued: (pos) => setStatus(st, queueText(pos), 'busy'),
        start: () => setStatus(st, 'running…', 'busy'),
        progress: (d) => {
          if (d.total) {
            prog.max = d.total;
            prog.value = d.done;
          }
        },
        preview: (d) => {
          if (!d.images || !d.images.length) return;
          if (!pimg) {
            pimg = el('img', { class: 'pix side-preview', alt: 'the image forming' });
            live.append(pimg);
          }
          pimg.src = d.images[0];
        },
        token: (d) => stream && stream.token(d),
        result: (d) => {
          prog.value = prog.max;
          clear(live);
          clear(res);
          for (const item of d.items || []) {
            res.append(run.kind === 'text' ? textCard(item, run, stream ? stream.tokens(item.i) : null) : imageCard(item, run, {}));
          }
          setStatus(st, `${(d.items || []).length} outputs${d.seconds !== undefined ? ` in ${fmt(d.seconds)} s` : ''}`, 'ok');
        },
        error: (m) => setStatus(st, `error: ${m}`, 'error'),
        cancelled: () => setStatus(st, 'cancelled.', 'warn'),
        done: (outcome) => {
          if (outcome === 'lost') setStatus(st, 'lost the connection.', 'error');
          onDone();
        },
      });
    } catch (e) {
      setStatus(st, e.message, 'error');
      onDone();
      return null;
    }
  }

  // ================================================================== JUDGE
  const J = { trial: null, pair: null, summaryLoaded: false };

  function fillJudgeSelects() {
    fillRunSelect($('#judge-run'), S.runs);
    fillRunSelect($('#pair-a'), S.runs);
    fillPairB();
  }
  function fillPairB() {
    const ra = S.byId.get($('#pair-a').value);
    const others = S.runs.filter((r) => ra && sameKind(r, ra) && r.id !== ra.id);
    fillRunSelect($('#pair-b'), others);
    if (!others.length) $('#pair-b').append(el('option', { value: '' }, `no other ${ra ? (ra.takes_prompt ? 'prompt' : ra.kind) : ''} run`));
    $('#pair-next').disabled = !others.length;
  }
  $('#pair-a').addEventListener('change', () => {
    fillPairB();
    resetPair();
    loadPairSummary();
  });
  $('#pair-b').addEventListener('change', () => {
    resetPair();
    loadPairSummary();
  });
  $('#judge-run').addEventListener('change', () => {
    J.trial = null;
    clear($('#judge-item')).append(el('p', { class: 'caption' }, 'Press “New item” to start.'));
    setJudgeButtons(false);
    setStatus($('#judge-feedback'), '');
    loadHypeSummary();
  });

  function ensureJudgeSummary() {
    if (J.summaryLoaded || !S.runs.length) return;
    J.summaryLoaded = true;
    loadHypeSummary();
    loadPairSummary();
  }

  function judgeMedia(obj, alt) {
    if (obj && typeof obj.prompt === 'string') {  // a prompt run: judged against what it was asked
      return el('div', { class: 'judge-prompted' },
        el('p', { class: 'judge-prompt', title: 'the prompt (a held-out image\'s caption)' }, `“${obj.prompt}”`),
        judgeMedia(Object.assign({}, obj, { prompt: undefined }), alt));
    }
    if (obj && obj.png && obj.wav) {  // sound: listen; the spectrogram beside the player
      return el('div', { class: 'judge-sound' },
        el('img', { class: 'pix judge-img', src: obj.png, alt }),
        el('audio', { controls: true, preload: 'auto', src: obj.wav }));
    }
    if (obj && obj.png) return el('img', { class: 'pix judge-img', src: obj.png, alt });
    if (obj && obj.text !== undefined) return el('div', { class: 'judge-text' }, obj.text);
    return el('p', { class: 'caption' }, 'nothing to show');
  }

  /** An opaque id for this browser, so the judgements of one person can be told apart. */
  function raterId() {
    try {
      let id = localStorage.getItem('genlab-rater');
      if (!id || !/^[0-9a-f]{16}$/.test(id)) {
        const a = new Uint8Array(8);
        crypto.getRandomValues(a);
        id = Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
        localStorage.setItem('genlab-rater', id);
      }
      return id;
    } catch (e) {
      return null;
    }
  }

  function setJudgeButtons(on) {
    $('#judge-real').disabled = !on;
    $('#judge-generated').disabled = !on;
  }

  async function nextTrial() {
    const run = $('#judge-run').value;
    if (!run) return;
    setJudgeButtons(false);
    $('#judge-next').disabled = true;
    const box = $('#judge-item');
    try {
      const t = await api('/api/trials', { kind: 'real_or_generated', run });
      J.trial = t.trial;
      clear(box).append(judgeMedia(t, 'real or generated?'));
      setJudgeButtons(true);
    } catch (e) {
      setStatus($('#judge-feedback'), e.message, 'error');
    } finally {
      $('#judge-next').disabled = false;
    }
  }

  async function answerTrial(answer) {
    if (!J.trial) return;
    const trial = J.trial;
    J.trial = null;
    setJudgeButtons(false);
    const fb = $('#judge-feedback');
    try {
      const r = await api('/api/judgements', { trial, answer, rater: raterId() });
      if (r.correct === true) setStatus(fb, `Right: it was ${r.truth}.`, 'ok');
      else if (r.correct === false) setStatus(fb, `Wrong: it was ${r.truth}.`, 'warn');
      else setStatus(fb, 'Recorded.', 'ok');
      drawHype(r.summary);
      await nextTrial();
    } catch (e) {
      setStatus(fb, e.message, 'error');
    }
  }

  async function loadHypeSummary() {
    const run = $('#judge-run').value;
    if (!run) return;
    try {
      drawHype(await api(`/api/judgements?runs=${enc(run)}`));
    } catch (e) {
      clear($('#judge-summary')).append(el('p', { class: 'caption' }, e.message));
    }
  }

  function drawHype(summary) {
    const box = clear($('#judge-summary'));
    const run = $('#judge-run').value;
    const h = summary && summary.hype && summary.hype[run];
    if (!h || !h.n) {
      box.append(el('p', { class: 'caption' }, 'No judgements for this run yet.'));
      return;
    }
    const ci = Array.isArray(h.ci) ? ` (95% CI ${pct(h.ci[0])}–${pct(h.ci[1])})` : '';
    box.append(
      el('div', { class: 'big-figure' }, el('span', { class: 'figure-value', id: 'hype-rate' }, pct(h.error_rate)), el('span', { class: 'figure-label' }, ` HYPE∞ error rate${ci}, n = ${h.n}`)),
      el('div', { class: 'meter' }, meterFill(h.error_rate), el('span', { class: 'meter-mid', title: '50%: people cannot tell' }))
    );
  }
  function meterFill(v) {
    const f = el('span', { class: 'meter-fill' });
    f.style.width = `${Math.max(0, Math.min(100, (v || 0) * 100))}%`;
    return f;
  }

  $('#judge-next').addEventListener('click', nextTrial);
  $('#judge-real').addEventListener('click', () => answerTrial('real'));
  $('#judge-generated').addEventListener('click', () => answerTrial('generated'));

  // pairwise
  function setPairButtons(on) {
    for (const id of ['#pick-left', '#pick-right', '#pick-tie']) $(id).disabled = !on;
  }
  function resetPair() {
    J.pair = null;
    clear($('#pair-left')).append(el('p', { class: 'caption' }, 'Press “New pair”.'));
    clear($('#pair-right'));
    setPairButtons(false);
    setStatus($('#pair-feedback'), '');
  }
  async function nextPair() {
    const a = $('#pair-a').value;
    const b = $('#pair-b').value;
    if (!a || !b) {
      setStatus($('#pair-feedback'), 'choose two runs of the same kind', 'error');
      return;
    }
    setPairButtons(false);
    $('#pair-next').disabled = true;
    try {
      const t = await api('/api/trials', { kind: 'pairwise', runs: [a, b], seed: randomSeed(), controls: {} });
      J.pair = t.trial;
      clear($('#pair-left')).append(judgeMedia(t.left, 'left'), el('p', { class: 'caption center' }, 'left'));
      clear($('#pair-right')).append(judgeMedia(t.right, 'right'), el('p', { class: 'caption center' }, 'right'));
      setPairButtons(true);
    } catch (e) {
      setStatus($('#pair-feedback'), e.message, 'error');
    } finally {
      $('#pair-next').disabled = false;
    }
  }
  async function answerPair(answer) {
    if (!J.pair) return;
    const trial = J.pair;
    J.pair = null;
    setPairButtons(false);
    try {
      const r = await api('/api/judgements', { trial, answer, rater: raterId() });
      setStatus($('#pair-feedback'), `Recorded: ${answer === 'tie' ? 'a tie' : `${answer} is better`}.`, 'ok');
      drawBT(r.summary);
      await nextPair();
    } catch (e) {
      setStatus($('#pair-feedback'), e.message, 'error');
    }
  }
  async function loadPairSummary() {
    const a = $('#pair-a').value;
    const b = $('#pair-b').value;
    if (!a || !b) {
      clear($('#bt-table'));
      return;
    }
    try {
      drawBT(await api(`/api/judgements?runs=${enc(a)},${enc(b)}`));
    } catch (e) {
      clear($('#bt-table')).append(el('p', { class: 'caption' }, e.message));
    }
  }
  function drawBT(summary) {
    const box = clear($('#bt-table'));
    const bt = summary && summary.bradley_terry;
    if (!bt || !bt.scores || !bt.scores.length || !bt.n) {
      box.append(el('p', { class: 'caption' }, 'No pairwise judgements yet.'));
      return;
    }
    const table = el('table', { class: 'bt' });
    table.append(el('caption', { class: 'caption' }, `Bradley–Terry scores from ${bt.n} judgements (higher: preferred)`));
    table.append(el('thead', null, el('tr', null, ['run', 'score', '95% CI', 'wins', 'losses', 'ties'].map((h) => el('th', null, h)))));
    const tb = el('tbody');
    const rows = bt.scores.slice().sort((x, y) => (y.score || 0) - (x.score || 0));
    for (const s of rows) {
      tb.append(
        el('tr', null,
          el('th', { scope: 'row' }, s.run),
          el('td', null, fmt(s.score)),
          el('td', null, Array.isArray(s.ci) ? `${fmt(s.ci[0])} – ${fmt(s.ci[1])}` : '–'),
          el('td', null, fmt(s.wins)),
          el('td', null, fmt(s.losses)),
          el('td', null, fmt(s.ties || 0)))
      );
    }
    table.append(tb);
    box.append(table);
  }
  $('#pair-next').addEventListener('click', nextPair);
  $('#pick-left').addEventListener('click', () => answerPair('left'));
  $('#pick-right').addEventListener('click', () => answerPair('right'));
  $('#pick-tie').addEventListener('click', () => answerPair('tie'));

  // =================================================================== RUNS
  function drawRunsTable() {
    const t = clear($('#runs-table'));
    t.append(el('thead', null, el('tr', null, ['run', 'family', 'kind', 'step', 'weights', 'evaluation', ''].map((h) => el('th', null, h)))));
    const tb = el('tbody');
    for (const r of S.runs) {
      const evs = [];
      if (r.eval && r.eval.metrics) {
        for (const [k, v] of Object.entries(r.eval.metrics)) {
          if (/_(ci|std)$/.test(k) || (v !== null && typeof v === 'object')) continue;
          evs.push(`${pretty(k)} ${fmt(v)}`);
          if (evs.length >= 4) break;
        }
      }
      const open = el('button', { type: 'button', class: 'small', 'data-open': r.id }, 'Open');
      open.addEventListener('click', () => {
        showTab('studio');
        if (!S.job) selectRun(r.id);
      });
      tb.append(
        el('tr', null,
          el('th', { scope: 'row' }, r.name || r.id, r.training ? el('span', { class: 'badge training' }, 'training') : null),
          el('td', null, r.family),
          el('td', null, r.kind, r.conditional ? ' · conditional' : ''),
          el('td', null, fmt(r.step)),
          el('td', { title: r.weights_sha256 || '' }, r.weights || ''),
          el('td', { class: 'caption' }, evs.length ? evs.join(' · ') : 'not evaluated'),
          el('td', null, open))
      );
    }
    t.append(tb);
  }
  $('#runs-refresh').addEventListener('click', async () => {
    try {
      await loadRuns();
    } catch (e) {
      globalError(e.message);
    }
  });

  // =================================================================== boot
  async function boot() {
    showTab(location.hash.slice(1) || 'studio');
    $('#seed').value = '0';
    try {
      await loadRuns();
    } catch (e) {
      globalError(`Could not load the runs: ${e.message}`);
      return;
    }
    if (!S.runs.length) {
      globalError('This server has no runs to serve.');
      return;
    }
    const want = new URLSearchParams(location.search).get('run');
    await selectRun(want && S.byId.has(want) ? want : S.runs[0].id);
    if (!$('#panel-judge').hidden) ensureJudgeSummary();
  }
  boot();
})();
