/* fairaudit report: sortable, filterable, downloadable tables, cohort drill-downs and figure
   tooltips, in one small dependency-free script (reports/explore.py explains the design).
   Safety: this file holds no report data.  Data come only from JSON script elements
   blocks, read with JSON.parse(textContent); the DOM is built with createElement/textContent
   (never innerHTML); no URL is ever taken from the data; the page fetches nothing (CSP). */
(() => {
  "use strict";

  const D = document;
  const SVG = "http://www.w3.org/2000/svg";
  const PAGE_SIZES = [25, 50, 100, 250];

  // ------------------------------------------------------------------ data blocks

  const cache = new Map();

  function blockElement(id) {
    const e = D.getElementById(id);
    return e && e.tagName === "SCRIPT" && e.type === "application/json" ? e : null;
  }

  /** A plain (uncompressed) block, parsed once. */
  function readBlock(id) {
    if (cache.has(id)) return cache.get(id);
    const e = blockElement(id);
    if (!e || e.dataset.encoding) return null;
    const value = JSON.parse(e.textContent);
    cache.set(id, value);
    return value;
  }

  async function inflate(text) {
    const bin = atob(text.trim());
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate")).getReader();
    const decoder = new TextDecoder("utf-8");
    let out = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      out += decoder.decode(value, { stream: true });
    }
    return out + decoder.decode();
  }

  /** Any block, compressed ones decoded on first use (a Promise, shared by concurrent callers). */
  function loadBlock(id) {
    const key = "async:" + id;
    if (!cache.has(key)) {
      const e = blockElement(id);
      cache.set(key, !e ? Promise.resolve(null)
        : e.dataset.encoding === "deflate-base64" ? inflate(e.textContent).then(JSON.parse)
          : Promise.resolve(readBlock(id)));
    }
    return cache.get(key);
  }

  // ------------------------------------------------------------------ DOM helpers

  /** createElement with properties; children are nodes or strings (always text). */
  function el(tag, props, children) {
    const e = D.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "href" || k === "src" || k === "style") throw new Error("no " + k + " from code paths with data");
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    add(e, children);
    return e;
  }

  function add(parent, children) {
    if (children === null || children === undefined) return;
    for (const c of Array.isArray(children) ? children : [children]) {
      if (c === null || c === undefined || c === false) continue;
      parent.append(typeof c === "string" || typeof c === "number" ? D.createTextNode(String(c)) : c);
    }
  }

  function svg(tag, attrs) {
    const e = D.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  // ------------------------------------------------------------------ numbers as Python writes them

  /** x.toFixed(d), but exact ties round half to even as Python's format() does. */
  function pyFixed(x, d) {
    const neg = x < 0 || Object.is(x, -0);
    const a = Math.abs(x);
    const t = a * 2 ** (d + 1);  // exact: a power of two
    if (Number.isInteger(t) && t % 2 === 1 && Number.isSafeInteger(t)) {
      // a == odd / 2^(d+1): exactly halfway between two d-decimal numbers
      const f = Math.floor(a * 10 ** d);  // exact for such a
      const n = f % 2 === 0 ? f : f + 1;
      const s = String(n).padStart(d + 1, "0");
      return (neg ? "-" : "") + (d ? s.slice(0, -d) + "." + s.slice(-d) : s);
    }
    return x.toFixed(d);
  }
  const num = (v) => typeof v === "number" && Number.isFinite(v);
  const fmtWer = (r) => (num(r) ? pyFixed(100 * r, 2) : "n/a");
  const fmtCount = (n) => (num(n) ? String(Math.trunc(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",") : "n/a");
  const fmtCi = (lo, hi) => (num(lo) && num(hi) ? "[" + fmtWer(lo) + ", " + fmtWer(hi) + "]" : "");

  // ------------------------------------------------------------------ sort keys

  /** Numeric-aware text key: case-folded, digit runs zero-padded ("R2" < "R10"). */
  function natKey(s) {
    s = String(s).trim().toLowerCase();
    return s === "" ? null : s.replace(/\d+/g, (m) => (m.length < 15 ? m.padStart(15, "0") : m));
  }

  /** The number a table cell shows ("1,234", "12.3 %", "[1.0, 2.0]", "< 0.001"), or null. */
  function numKey(text) {
    const s = String(text).replace(/\u2212/g, "-").replace(/,/g, "").trim();
    const m = s.match(/-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/);
    if (!m) return null;
    let v = parseFloat(m[0]);
    if (/^</.test(s)) v -= 1e-12;
    else if (/^>/.test(s)) v += 1e-12;
    return v;
  }

  const cellText = (node) => node.textContent.replace(/[\u00ad\u200b]/g, "").replace(/\s+/g, " ").trim();

  function csvField(v) {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function safeFilename(name) {
    return String(name || "table.csv").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "table.csv";
  }

  // Chromium refuses URLs longer than 2 MB: a larger CSV (a long speaker table) goes out
  // as a blob: URL of the same bytes instead of a data: URI
  const DATA_URI_MAX = 1500000;

  function download(text, filename) {
    // the href is made here from the CSV text, never taken from the data
    let url = "data:text/csv;charset=utf-8," + encodeURIComponent(text);
    let blob = false;
    if (url.length > DATA_URI_MAX) {
      url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
      blob = true;
    }
    const a = D.createElement("a");
    a.href = url;
    a.download = safeFilename(filename);
    a.hidden = true;
    D.body.append(a);
    a.click();
    a.remove();
    if (blob) setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ------------------------------------------------------------------ tables

  let tableCount = 0;

  /**
   * One table engine for both kinds of table:
   *  - DOM mode (src.rows): the server-rendered rows are kept and reordered/hidden (they
   *    print, and read without the script);
   *  - data mode (src.cell): only the current page's rows are built, from the data.
   * src: {n, columns: [{label, num}], key(i, c), text(i), csvHeader, csvRow(i), csvLines,
   *       filename, pageSize, sort: [col, dir]}
   */
  function Table(table, src) {
    const id = "fa-t" + (++tableCount);
    const n = src.n;
    const cols = src.columns;
    let order = Array.from({ length: n }, (_, i) => i);
    let matches = null;  // Uint8Array, null = every row
    let view = order;
    let page = 0;
    let pageSize = src.pageSize || 50;
    let sortCol = -1;
    let sortDir = 1;
    const keyCache = new Map();
    let texts = null;

    const thead = table.tHead || table.createTHead();
    const tbody = table.tBodies[0] || table.appendChild(D.createElement("tbody"));
    const ths = Array.from(thead.rows[0].cells);

    ths.forEach((th, c) => {
      if (c >= cols.length) return;
      const btn = el("button", { type: "button", class: "fa-sort", title: "Sort by this column",
                                 onclick: () => sortBy(c, sortCol === c ? -sortDir : 1) });
      while (th.firstChild) btn.append(th.firstChild);
      th.append(btn);
    });

    const wrap = table.closest(".scroll, .table-wrap") || table;
    const filter = el("input", { type: "search", class: "fa-filter", placeholder: "Filter rows",
                                 "aria-label": "Filter the rows of this table", "aria-controls": id });
    const status = el("span", { class: "fa-status", "aria-live": "polite" });
    const csvBtn = el("button", { type: "button", class: "fa-csv", text: "Download CSV",
                                  title: "The rows that pass the filter, in the order shown",
                                  onclick: () => download(csv(), src.filename) });
    const tools = el("div", { class: "fa-tools fa-chrome" }, [filter, csvBtn, status]);
    const prev = el("button", { type: "button", text: "‹ Previous", onclick: () => go(page - 1) });
    const next = el("button", { type: "button", text: "Next ›", onclick: () => go(page + 1) });
    const where = el("span", { class: "fa-where" });
    const size = el("select", { "aria-label": "Rows per page", onchange: () => { pageSize = +size.value; go(0); } },
      PAGE_SIZES.map((k) => el("option", { value: k, selected: k === pageSize, text: k + " per page" })));
    const pager = el("div", { class: "fa-pager fa-chrome" }, [prev, where, next, size]);
    table.id = table.id || id;
    filter.setAttribute("aria-controls", table.id);
    wrap.before(tools);
    wrap.after(pager);

    let timer = 0;
    filter.addEventListener("input", () => {
      clearTimeout(timer);
      // small tables filter at once; long ones wait for a pause in the typing
      if (n <= 5000) applyFilter(filter.value);
      else timer = setTimeout(() => applyFilter(filter.value), 200);
    });

    function keys(c) {
      if (!keyCache.has(c)) {
        if (cols[c].num) {
          const k = new Float64Array(n);
          for (let i = 0; i < n; i++) {
            const v = src.key(i, c);
            k[i] = typeof v === "number" ? v : NaN;
          }
          keyCache.set(c, k);
        } else {
          const k = new Array(n);
          for (let i = 0; i < n; i++) {
            const v = src.key(i, c);
            k[i] = v === null || v === undefined ? null : natKey(v);
          }
          keyCache.set(c, k);
        }
      }
      return keyCache.get(c);
    }

    function sortBy(c, dir) {
      const k = keys(c);
      // Array.prototype.sort is stable: ties keep the order they had (sort by B, then by A)
      const missing = cols[c].num ? (v) => v !== v : (v) => v === null;
      order.sort((a, b) => {
        const x = k[a], y = k[b];
        const mx = missing(x), my = missing(y);
        if (mx || my) return mx === my ? 0 : mx ? 1 : -1;  // empty cells last, either way
        return x === y ? 0 : x < y ? -dir : dir;
      });
      sortCol = c;
      sortDir = dir;
      ths.forEach((th, j) => {
        if (j === c) th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
        else th.removeAttribute("aria-sort");
      });
      refresh(0);
    }

    function applyFilter(value) {
      const terms = value.toLowerCase().split(/\s+/).filter(Boolean);
      if (!terms.length) matches = null;
      else {
        if (!texts) {
          texts = new Array(n);
          for (let i = 0; i < n; i++) texts[i] = src.text(i).toLowerCase();
        }
        matches = new Uint8Array(n);
        for (let i = 0; i < n; i++) matches[i] = terms.every((t) => texts[i].includes(t)) ? 1 : 0;
      }
      refresh(0);
    }

    function refresh(p) {
      view = matches ? order.filter((i) => matches[i]) : order;
      go(p);
    }

    function go(p) {
      const pages = Math.max(1, Math.ceil(view.length / pageSize));
      page = Math.min(Math.max(0, p), pages - 1);
      const start = page * pageSize;
      const end = Math.min(view.length, start + pageSize);
      if (src.rows) {
        const inView = new Uint8Array(n);
        for (let j = 0; j < view.length; j++) inView[view[j]] = j >= start && j < end ? 2 : 1;
        const frag = D.createDocumentFragment();
        for (const i of order) {
          const tr = src.rows[i];
          tr.classList.toggle("fa-out", inView[i] === 0);
          tr.classList.toggle("fa-paged", inView[i] === 1);
          frag.append(tr);
        }
        tbody.append(frag);
      } else {
        const rows = [];
        for (let j = start; j < end; j++) {
          const i = view[j];
          rows.push(el("tr", null, cols.map((col, c) => el("td", { class: col.num ? "num" : col.cls || null },
                                                             src.cell(i, c)))));
        }
        tbody.replaceChildren(...rows);
      }
      const shown = view.length;
      status.textContent = matches ? `${fmtCount(shown)} of ${fmtCount(n)} rows match` : `${fmtCount(n)} rows`;
      where.textContent = shown ? `rows ${fmtCount(start + 1)}–${fmtCount(end)} of ${fmtCount(shown)}` : "no rows";
      prev.disabled = page === 0;
      next.disabled = end >= shown;
      pager.hidden = shown <= PAGE_SIZES[0] && pageSize >= PAGE_SIZES[0];
    }

    function csv() {
      if (src.csvLines) return src.csvLines.header + view.map((i) => src.csvLines.rows[i]).join("");
      const lines = [src.csvHeader.map(csvField).join(",")];
      for (const i of view) lines.push(src.csvRow(i).map(csvField).join(","));
      return lines.join("\n") + "\n";
    }

    if (src.sort) sortBy(src.sort[0], src.sort[1]);
    else refresh(0);
    return { table, sortBy, applyFilter, csv, get view() { return view; } };
  }

  /** A server-rendered table: its own rows, keys from its data block or from its text. */
  function enhanceTable(table) {
    const block = (table.dataset.fa && readBlock(table.dataset.fa)) || {};
    const head = table.tHead && table.tHead.rows[0];
    const body = table.tBodies[0];
    if (!head || !body || !body.rows.length) return null;
    const ths = Array.from(head.cells);
    const columns = ths.map((th) => ({ num: th.classList.contains("num"), label: cellText(th) }));
    const rows = Array.from(body.rows);
    // cell of each column in each row (a cell spanning columns gives no sort key)
    const grid = rows.map((tr) => {
      const cells = new Array(columns.length).fill(null);
      let c = 0;
      for (const td of tr.cells) {
        if (td.colSpan === 1 && c < cells.length) cells[c] = td;
        c += td.colSpan;
      }
      return cells;
    });
    const drill = block.drill;
    if (drill && drill.rows) {
      rows.forEach((tr, i) => {
        const target = drill.rows[i];
        const td = grid[i][drill.col];
        if (!target || target[1] === null || !td) return;
        const btn = el("button", { type: "button", class: "fa-link", title: "Open this cohort's details",
                                   onclick: () => openDrill(target[0], target[1]) });
        while (td.firstChild) btn.append(td.firstChild);
        td.append(btn);
      });
    }
    const section = table.closest("section");
    return Table(table, {
      n: rows.length, columns, rows,
      key: (i, c) => {
        if (block.keys) return block.keys[i][c];
        const td = grid[i][c];
        if (!td) return null;
        return columns[c].num ? numKey(cellText(td)) : cellText(td);
      },
      text: (i) => cellText(rows[i]),
      csvLines: block.csv || null,
      csvHeader: columns.map((c) => c.label),
      csvRow: (i) => grid[i].map((td) => (td ? cellText(td) : "")),
      filename: block.filename || ((section && section.id ? section.id : "report") + "-table.csv"),
      pageSize: 50,
    });
  }

  /** A table built from data (only the current page is in the DOM). */
  function dataTable(host, src) {
    const table = el("table", { class: "fa-data" }, [
      el("thead", null, el("tr", null, src.columns.map((c) => el("th", { class: c.num ? "num" : null,
                                                                          title: c.title || null }, c.label)))),
      el("tbody")]);
    const wrap = el("div", { class: "scroll" }, table);
    host.append(wrap);
    return Table(table, src);
  }

  // ------------------------------------------------------------------ speakers

  /** Columns of a per-speaker table over block S, rows = indices into S. */
  function speakerSource(S, idx, extra) {
    const wer = (i) => (S.ref_words[i] > 0 ? S.errors[i] / S.ref_words[i] : null);
    const base = [
      { label: "Speaker", cls: "mono id", get: (i) => S.id[i], show: (i) => el("bdi", { text: S.id[i] }) },
      { label: "Utterances", num: true, get: (i) => S.utterances[i], show: (i) => fmtCount(S.utterances[i]) },
      { label: "Ref. " + (S.tokens || "words"), num: true, get: (i) => S.ref_words[i], show: (i) => fmtCount(S.ref_words[i]) },
      { label: "Errors", num: true, get: (i) => S.errors[i], show: (i) => fmtCount(S.errors[i]) },
      { label: (S.rate || "WER") + " %", num: true, get: wer, show: (i) => fmtWer(wer(i)) },
      { label: S.level + " CI", num: true, title: S.ci_method, get: (i) => (S.ci_low ? S.ci_low[i] : null),
        show: (i) => (S.ci_low ? fmtCi(S.ci_low[i], S.ci_high[i]) : "") },
    ];
    const cols = base.concat(extra || []);
    return {
      n: idx.length,
      columns: cols.map((c) => ({ label: c.label, num: !!c.num, cls: c.cls, title: c.title })),
      key: (r, c) => cols[c].get(idx[r]),
      cell: (r, c) => cols[c].show(idx[r]),
      text: (r) => cols.filter((c) => !c.num).map((c) => String(c.get(idx[r]) ?? "")).join(" "),
      csvHeader: ["speaker_id", "utterances", "ref_words", "errors", "wer", "wer_ci_low", "wer_ci_high"]
        .concat((extra || []).map((c) => c.csv)),
      csvRow: (r) => {
        const i = idx[r];
        const w = wer(i);
        return [S.id[i], S.utterances[i], S.ref_words[i], S.errors[i], w === null ? "" : w,
                S.ci_low && S.ci_low[i] !== null ? S.ci_low[i] : "", S.ci_high && S.ci_high[i] !== null ? S.ci_high[i] : ""]
          .concat((extra || []).map((c) => c.get(i) ?? ""));
      },
      pageSize: 25,
    };
  }

  async function showAllSpeakers(host, button, meta) {
    button.disabled = true;
    button.textContent = "Loading…";
    const S = await loadBlock("fa-speakers");
    const extra = [];
    for (const sec of meta.sections) {
      const m = S.members[sec.anchor];
      const B = readBlock(sec.drill);
      if (!m || !B) continue;
      extra.push({
        label: sec.key, csv: "cohort:" + sec.key,
        get: (i) => (m[i] >= 0 ? B.cohorts[m[i]].id : null),
        show: (i) => (m[i] >= 0 ? el("button", { type: "button", class: "fa-link mono", text: B.cohorts[m[i]].id,
                                                 title: B.cohorts[m[i]].label,
                                                 onclick: () => openDrill(sec.drill, m[i]) }) : ""),
      });
    }
    const idx = Array.from({ length: S.id.length }, (_, i) => i);
    const src = speakerSource(S, idx, extra);
    src.filename = "speakers.csv";
    button.remove();
    dataTable(host, src);
    host.dataset.ready = "1";
  }

  // ------------------------------------------------------------------ drill-down

  let dialog = null;

  function theDialog() {
    if (dialog) return dialog;
    const title = el("h2", { id: "fa-dialog-title" });
    const sub = el("p", { class: "fa-dialog-sub muted small" });
    const body = el("div", { class: "fa-dialog-body" });
    const close = el("button", { type: "button", class: "fa-close", "aria-label": "Close", text: "×",
                                 onclick: () => dialog.close() });
    dialog = el("dialog", { class: "fa-dialog fa-chrome", "aria-labelledby": "fa-dialog-title" },
      [el("div", { class: "fa-dialog-head" }, [el("div", null, [title, sub]), close]), body]);
    dialog.addEventListener("click", (ev) => { if (ev.target === dialog) dialog.close(); });
    D.body.append(dialog);
    dialog.parts = { title, sub, body };
    return dialog;
  }

  function factList(rows, withFields) {
    return el("dl", { class: "facts" }, rows.flatMap((r) => withFields
      ? [el("dt", { text: r[1] }), el("dd", { "data-field": "drill-" + r[0], text: r[2] })]
      : [el("dt", { text: r[0] }), el("dd", { text: r[1] })]));
  }

  function pair(cls, r, h, m, title) {
    return el("span", { class: "pair" + (cls ? " " + cls : ""), title: title || null },
      [el("span", { class: "r" }, r), el("span", { class: "h" }, h), el("span", { class: "m", text: m })]);
  }

  function utterance(u, B) {
    const head = el("div", { class: "head" }, [el("bdi", { class: "mono", text: u.utt_id }), " · speaker ",
      el("bdi", { class: "mono", text: u.speaker_id }),
      ` · ${u.errors} errors in ${u.ref_words} reference ${B.tokens || "words"} (${B.rate || "WER"} ${u.wer} %)`,
      u.alignment ? ` · S ${u.ops[0]}, D ${u.ops[1]}, I ${u.ops[2]}` : ""]);
    const box = el("div", { class: "utt" }, head);
    if (u.alignment) {
      const al = el("div", { class: "align" }, pair("lab", "REF", "HYP", "\u00a0"));
      for (const [op, r, h] of u.alignment) {
        if (op === "equal") al.append(pair("", r, h, "\u00a0"));
        else if (op === "sub") al.append(pair("sub", r, h, "S", "substitution"));
        else if (op === "del") al.append(pair("del", el("del", { text: r }), "***", "D", "deletion"));
        else al.append(pair("ins", "***", el("ins", { text: h }), "I", "insertion"));
      }
      box.append(al);
    }
    return box;
  }

  function openDrill(blockId, index) {
    const B = readBlock(blockId);
    const c = B && B.cohorts[index];
    if (!c) return;
    const dlg = theDialog();
    const { title, sub, body } = dlg.parts;
    title.textContent = c.label;
    sub.replaceChildren(B.title + " · cohort ", el("bdi", { class: "mono", text: c.id }),
      c.role ? el("span", { class: "tag " + c.role, text: c.role }) : "",
      c.few ? el("span", { class: "tag few", text: "too few speakers" }) : "");
    body.replaceChildren();
    dlg.dataset.block = blockId;
    dlg.dataset.cohort = String(index);
    add(body, [el("h3", { text: "Definition" }), ...c.definition.map((line) => el("p", { class: "fa-def", text: line })),
               factList(c.facts, true)]);
    if (c.details && c.details.length) add(body, factList(c.details, false));
    if (c.adjusted) add(body, [el("h3", { text: "Adjusted for covariates" }), factList(c.adjusted, false)]);
    if (c.systems) {
      const host = el("div", { class: "fa-systems" });
      add(body, [el("h3", { text: "The same speakers under each system" }), host]);
      const cols = ["System", (B.rate || "WER") + " %", "Δ vs " + B.first_system, "Errors", "Ref. " + (B.tokens || "words"), "Speakers"];
      dataTable(host, {
        n: c.systems.length,
        columns: cols.map((label, j) => ({ label, num: j > 0 })),
        key: (i, j) => (j === 0 ? c.systems[i][0] : numKey(c.systems[i][j])),
        cell: (i, j) => (j === 0 ? el("bdi", { text: c.systems[i][0] }) : c.systems[i][j]),
        text: (i) => c.systems[i].join(" "), csvHeader: cols, csvRow: (i) => c.systems[i],
        filename: "systems-" + c.id + ".csv",
      });
    }
    add(body, el("h3", { text: "Worst utterances" }));
    if (!c.worst || !c.worst.length) {
      add(body, el("p", { class: "small muted", text: c.worst ? "No utterances." : "Not stored for this cohort (the "
        + "report keeps worst utterances for the first 200 cohorts by rank)." }));
    } else {
      if (B.worst_note) add(body, el("p", { class: "note", text: B.worst_note }));
      else add(body, el("div", { class: "legend" }, [
        el("span", { class: "pair sub" }, [el("span", { class: "h", text: "S" }), " substitution"]),
        el("span", { class: "pair del" }, [el("del", { text: "D" }), " deletion"]),
        el("span", { class: "pair ins" }, [el("ins", { text: "I" }), " insertion"])]));
      add(body, c.worst.map((u) => utterance(u, B)));
    }
    const spk = el("div", { class: "fa-speakers" });
    add(body, [el("h3", { text: "Speakers" }), spk]);
    if (!B.members || !blockElement("fa-speakers")) {
      spk.append(el("p", { class: "small muted", text: "This report holds no per-speaker table (a report.json "
        + "written before schema 1.2): re-run the audit to list the speakers here." }));
    } else {
      spk.append(el("p", { class: "small muted", text: "Loading…" }));
      loadBlock("fa-speakers").then((S) => {
        const m = S.members[B.anchor];
        const idx = [];
        for (let i = 0; i < m.length; i++) if (m[i] === index) idx.push(i);
        const src = speakerSource(S, idx, []);
        src.filename = "speakers-" + B.key + "-" + c.id + ".csv";
        src.sort = [4, -1];  // highest WER first
        spk.replaceChildren(el("p", { class: "small muted", text: `${fmtCount(idx.length)} speakers. The interval is an `
          + S.ci_method + "." }));
        dataTable(spk, src);
        spk.dataset.ready = "1";
      });
    }
    if (!dlg.open) dlg.showModal();
    body.scrollTop = 0;
  }

  // ------------------------------------------------------------------ figures

  let tip = null;

  function showTip(lines, x, y) {
    if (!tip) {
      tip = el("div", { class: "fa-tip fa-chrome", role: "tooltip" });
      D.body.append(tip);
    }
    tip.replaceChildren(...lines.map((line, i) => el("div", { class: i ? null : "fa-tip-title", text: line })));
    tip.hidden = false;
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.max(4, Math.min(x + 14, innerWidth - w - 4)) + "px";  // CSSOM: allowed under the CSP
    tip.style.top = Math.max(4, y + 16 + h > innerHeight ? y - h - 10 : y + 16) + "px";
  }

  function hideTip() { if (tip) tip.hidden = true; }

  function tipLines(B, c) {
    return [c.id + " · " + c.label, (B.rate || "WER") + " " + c.wer + " %" + (c.ci ? " (" + B.level + " CI " + c.ci + ")" : ""),
            c.speakers + " speakers" + (c.role ? " · " + c.role + " cohort" : "") + (c.few ? " · too few speakers" : ""),
            "click for details"];
  }

  function initFigure(wrap) {
    const F = readBlock(wrap.dataset.fa);
    const B = F && readBlock(F.drill);
    if (!F || !B) return;
    const layer = svg("svg", { class: "fa-layer fa-chrome", viewBox: `0 0 ${F.w} ${F.h}`, preserveAspectRatio: "none" });
    wrap.append(layer);
    if (F.rects) {
      for (const [x, y, w, h, i] of F.rects) {
        const c = B.cohorts[i];
        if (!c) continue;
        const r = svg("rect", { x, y, width: w, height: h, class: "fa-hit" + (c.role ? " fa-" + c.role : ""),
                                tabindex: 0, role: "button", "data-cohort": i });
        r.setAttribute("aria-label", tipLines(B, c).slice(0, 3).join(", "));
        r.addEventListener("mousemove", (ev) => showTip(tipLines(B, c), ev.clientX, ev.clientY));
        r.addEventListener("mouseleave", hideTip);
        r.addEventListener("focus", () => { const b = r.getBoundingClientRect(); showTip(tipLines(B, c), b.left, b.top); });
        r.addEventListener("blur", hideTip);
        r.addEventListener("click", () => openDrill(F.drill, i));
        r.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); openDrill(F.drill, i); } });
        layer.append(r);
      }
    }
    if (F.points) {
      const pts = F.points;
      const mark = svg("g", { class: "fa-mark" });
      const hit = svg("rect", { x: 0, y: 0, width: F.w, height: F.h, class: "fa-surface" });
      layer.append(mark, hit);
      let current = -1;
      const nearest = (ev) => {
        const box = layer.getBoundingClientRect();
        const sx = F.w / box.width, sy = F.h / box.height;
        const px = (ev.clientX - box.left) * sx, py = (ev.clientY - box.top) * sy;
        const tol = 9 * sx;
        let best = -1, bestD = tol * tol;
        for (let j = 0; j < pts.length; j++) {
          const dx = pts[j][0] - px, dy = pts[j][1] - py, d = dx * dx + dy * dy;
          if (d < bestD) { bestD = d; best = j; }
        }
        return best < 0 ? -1 : pts[best][2];
      };
      const highlight = (i) => {
        if (i === current) return;
        current = i;
        mark.replaceChildren();
        if (i < 0) return;
        let k = 0;
        for (const p of pts) {
          if (p[2] !== i) continue;
          if (++k > 3000) break;
          mark.append(svg("circle", { cx: p[0], cy: p[1], r: 4.5 }));
        }
      };
      hit.addEventListener("mousemove", (ev) => {
        const i = nearest(ev);
        highlight(i);
        hit.classList.toggle("fa-near", i >= 0);
        if (i >= 0) showTip(tipLines(B, B.cohorts[i]), ev.clientX, ev.clientY);
        else hideTip();
      });
      hit.addEventListener("mouseleave", () => { highlight(-1); hideTip(); });
      hit.addEventListener("click", (ev) => { const i = nearest(ev); if (i >= 0) openDrill(F.drill, i); });
    }
  }

  // ------------------------------------------------------------------ start

  function init() {
    const meta = readBlock("fa-meta");
    if (!meta) return;
    D.documentElement.classList.add("fa-js");
    for (const t of D.querySelectorAll("main table")) enhanceTable(t);
    for (const f of D.querySelectorAll(".fa-fig[data-fa]")) initFigure(f);
    const host = D.getElementById("fa-speakers-host");
    if (host && meta.speakers) {
      const button = el("button", { type: "button", class: "fa-show fa-chrome",
                                    text: `Show the table of ${fmtCount(meta.speakers)} speakers`,
                                    onclick: () => showAllSpeakers(host, button, meta) });
      host.append(button);
    }
    D.addEventListener("keydown", (ev) => { if (ev.key === "Escape") hideTip(); });
    // for tests and the curious: the same engine, no data behind it
    window.fairaudit = { openDrill, pyFixed, loadBlock, version: 1 };
  }

  init();
})();
