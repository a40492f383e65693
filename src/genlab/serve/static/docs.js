// genlab studio: the /docs page. Reads /openapi.json and lists every endpoint with its
// summary, parameters and request body fields. No CDN, no Swagger UI; text nodes only.
'use strict';

(() => {
  const $ = (sel) => document.querySelector(sel);

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === undefined || kid === null || kid === false) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }

  function append(parent, ...kids) {
    for (const kid of kids) if (kid !== null && kid !== undefined && kid !== false) parent.append(kid);
    return parent;
  }

  /** Docstring text with ``code`` spans as <code> (text nodes only). */
  function rich(text) {
    const parts = String(text || '').split('``');
    return parts.map((p, i) => (i % 2 ? el('code', null, p) : p));
  }

  let SPEC = {};

  function resolve(schema) {
    let s = schema || {};
    const seen = new Set();
    while (s && s.$ref && !seen.has(s.$ref)) {
      seen.add(s.$ref);
      const parts = s.$ref.replace(/^#\//, '').split('/');
      let t = SPEC;
      for (const p of parts) t = t ? t[p] : undefined;
      s = t || {};
    }
    return s || {};
  }
  function refName(schema) {
    return schema && schema.$ref ? schema.$ref.split('/').pop() : null;
  }

  /** A short, readable type: "integer", "string | null", "list of number", "Vary". */
  function typeOf(schema) {
    if (!schema) return 'any';
    if (schema.$ref) return refName(schema);
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
    const alt = schema.anyOf || schema.oneOf;
    if (alt) return alt.map(typeOf).join(' | ');
    if (schema.type === 'array') return `list of ${typeOf(schema.items)}`;
    if (schema.type === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object') {
      return `object (${typeOf(schema.additionalProperties)} values)`;
    }
    if (Array.isArray(schema.type)) return schema.type.join(' | ');
    return schema.type || 'any';
  }

  function constraints(schema) {
    const out = [];
    const pick = (s) => {
      if (!s) return;
      if (s.minimum !== undefined) out.push(`≥ ${s.minimum}`);
      if (s.exclusiveMinimum !== undefined) out.push(`> ${s.exclusiveMinimum}`);
      if (s.maximum !== undefined) out.push(`≤ ${s.maximum}`);
      if (s.exclusiveMaximum !== undefined) out.push(`< ${s.exclusiveMaximum}`);
      if (s.maxLength !== undefined) out.push(`at most ${s.maxLength} chars`);
      if (s.minItems !== undefined) out.push(`at least ${s.minItems} items`);
      if (s.maxItems !== undefined) out.push(`at most ${s.maxItems} items`);
    };
    pick(schema);
    for (const a of schema.anyOf || []) pick(a);
    return out.join(', ');
  }

  function fieldsTable(schema, depth = 0) {
    const s = resolve(schema);
    const props = s.properties || {};
    const names = Object.keys(props);
    if (!names.length) {
      return el('p', { class: 'caption' }, `${typeOf(schema)}${s.description ? ` – ${s.description}` : ''}`);
    }
    const req = new Set(s.required || []);
    const table = el('table', { class: 'eval-table fields' });
    table.append(el('thead', null, el('tr', null, el('th', null, 'field'), el('th', null, 'type'), el('th', null, 'default'), el('th', null, 'notes'))));
    const tb = el('tbody');
    for (const name of names) {
      const p = props[name];
      const notes = [p.description || (p.$ref ? resolve(p).description : ''), constraints(p)].filter(Boolean).join(' · ');
      const def = p.default !== undefined ? JSON.stringify(p.default) : req.has(name) ? 'required' : '';
      tb.append(
        el('tr', null,
          el('th', { scope: 'row' }, el('code', null, name)),
          el('td', null, el('code', null, typeOf(p))),
          el('td', { class: req.has(name) ? 'required' : '' }, def),
          el('td', null, rich(notes)))
      );
      // one level of nested objects (e.g. "vary")
      const nestedRef = p.$ref || ((p.anyOf || []).find((a) => a.$ref) || {}).$ref;
      if (nestedRef && depth < 1) {
        const inner = fieldsTable({ $ref: nestedRef }, depth + 1);
        tb.append(el('tr', { class: 'nested' }, el('td', { colspan: 4 }, el('div', { class: 'caption' }, `${refName({ $ref: nestedRef })}:`), inner)));
      }
    }
    table.append(tb);
    return el('div', { class: 'table-wrap' }, table);
  }

  function endpoint(path, method, op) {
    const id = `${method}-${path}`.replace(/[^a-zA-Z0-9]+/g, '-');
    const card = el('section', { class: 'card endpoint', id });
    append(
      card,
      el('h2', { class: 'ep-head' }, el('span', { class: `method method-${method}` }, method.toUpperCase()), ' ', el('code', { class: 'ep-path' }, path)),
      op.summary ? el('p', { class: 'ep-summary' }, op.summary) : null,
      op.description && op.description !== op.summary ? el('p', { class: 'caption ep-desc' }, rich(op.description)) : null
    );
    const params = op.parameters || [];
    if (params.length) {
      card.append(el('h4', null, 'Parameters'));
      const table = el('table', { class: 'eval-table fields' });
      table.append(el('thead', null, el('tr', null, el('th', null, 'name'), el('th', null, 'in'), el('th', null, 'type'), el('th', null, 'notes'))));
      const tb = el('tbody');
      for (const p of params) {
        tb.append(
          el('tr', null,
            el('th', { scope: 'row' }, el('code', null, p.name)),
            el('td', null, p.in),
            el('td', null, el('code', null, typeOf(p.schema))),
            el('td', null, [p.required ? 'required' : '', p.description || ''].filter(Boolean).join(' · ')))
        );
      }
      table.append(tb);
      card.append(el('div', { class: 'table-wrap' }, table));
    }
    const body = op.requestBody;
    if (body && body.content) {
      const ct = Object.keys(body.content)[0];
      const schema = body.content[ct].schema;
      const name = refName(schema);
      card.append(el('h4', null, `Request body (${ct})${name ? `: ${name}` : ''}`));
      const desc = resolve(schema).description;
      if (desc) card.append(el('p', { class: 'caption' }, rich(desc)));
      card.append(fieldsTable(schema));
    }
    const res = op.responses || {};
    const codes = Object.keys(res);
    if (codes.length) {
      card.append(el('h4', null, 'Responses'));
      const ul = el('ul', { class: 'responses' });
      for (const c of codes) {
        const r = res[c] || {};
        ul.append(el('li', null, el('code', null, c), ` ${r.description || ''}`));
      }
      card.append(ul);
    }
    return card;
  }

  async function main() {
    const status = $('#docs-status');
    status.textContent = 'loading /openapi.json…';
    let spec;
    try {
      const r = await fetch('/openapi.json', { credentials: 'same-origin' });
      if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
      spec = await r.json();
    } catch (e) {
      status.textContent = `could not load /openapi.json: ${e.message}`;
      status.classList.add('error');
      return;
    }
    SPEC = spec;
    status.textContent = '';
    const info = spec.info || {};
    $('#api-title').textContent = `${info.title || 'HTTP API'}${info.version ? ` ${info.version}` : ''}`;
    document.title = `${info.title || 'genlab studio'} · HTTP API`;
    append($('#api-description'), ...rich(info.description || ''));
    const toc = $('#toc');
    const list = $('#endpoints');
    const paths = spec.paths || {};
    const groups = new Map();
    for (const path of Object.keys(paths)) {
      const g = path.startsWith('/v1/') ? 'OpenAI-compatible' : path.split('/')[2] || 'other';
      if (!groups.has(g)) groups.set(g, []);
      for (const method of Object.keys(paths[path])) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        groups.get(g).push([path, method, paths[path][method]]);
      }
    }
    const tocList = el('ul', { class: 'toc-list' });
    for (const [g, eps] of groups) {
      if (!eps.length) continue;
      list.append(el('h3', { class: 'group-head' }, g));
      for (const [path, method, op] of eps) {
        const card = endpoint(path, method, op);
        list.append(card);
        tocList.append(el('li', null, el('a', { href: `#${card.id}` }, el('span', { class: `method method-${method}` }, method.toUpperCase()), ' ', el('code', null, path))));
      }
    }
    toc.append(tocList);
  }
  main();
})();
