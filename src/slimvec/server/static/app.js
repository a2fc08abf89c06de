"use strict";
// Plain DOM code, no build step. Every server string is inserted as text (never innerHTML),
// so a document's title or snippet cannot inject markup; <mark> elements are built by hand.
(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("search-form"), status = $("status"), results = $("results");

  function setStatus(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  const STOP = new Set(("a an and are as at be but by can do does did for from had has have how i if in into is it " +
    "its of on or so than that the their them then there these they this to was we were what when where which who " +
    "why will with you your").split(" "));

  // Han, kana, hangul and CJK compatibility ideographs: the same ranges as the bm25 retriever's cjk_bigrams.
  const CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff";
  const CJK_RUN = new RegExp("([" + CJK + "]+)", "u");
  const IS_CJK = new RegExp("^[" + CJK + "]", "u");
  const WORD_CHAR = "(?:(?![" + CJK + "])[\\p{L}\\p{N}])";  // a letter or digit of a spaced script

  // Query terms worth marking, each once: words (no stopwords, no single letters) and, since Chinese and
  // Japanese put no spaces between words, each run of CJK characters as its overlapping bigrams (a lone
  // character stays). A term is {text, cjk}: CJK terms match anywhere, words only as whole words.
  function terms(query) {
    const seen = new Set(), out = [];
    const add = (text, cjk) => { if (!seen.has(text)) { seen.add(text); out.push({ text, cjk }); } };
    for (const tok of query.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
      for (const part of tok.split(CJK_RUN)) {
        if (!part) continue;
        if (IS_CJK.test(part)) {
          if (part.length === 1) add(part, true);
          for (let i = 0; i + 2 <= part.length; i++) add(part.slice(i, i + 2), true);
        } else if (part.length > 1 && !STOP.has(part)) {
          add(part, false);
        }
      }
    }
    return out;
  }

  function escapeRegExp(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  // Append `text` to `parent`, wrapping each stretch covered by query terms in one <mark>. Overlapping
  // matches (the bigrams 维生 and 生素 of 维生素) join into one mark, so every match is found, not just the
  // leftmost of a regex alternation.
  function highlight(parent, text, words) {
    const covered = new Uint8Array(text.length);
    for (const w of words) {
      // whole words only for words: "the" must not light up inside "these"; a CJK character next to one is a
      // word boundary ("Tower" of "東京Tower"), as the query's own splitting (`terms`) takes it
      const src = w.cjk ? escapeRegExp(w.text)
        : "(?<!" + WORD_CHAR + ")" + escapeRegExp(w.text) + "(?!" + WORD_CHAR + ")";
      const re = new RegExp(src, "giu");
      let m;
      while ((m = re.exec(text)) !== null) {
        covered.fill(1, m.index, m.index + m[0].length);
        // on by one character, not one UTF-16 unit: a "u" regex put inside a surrogate pair (a match starting
        // with 𠮷 or 𝐀) steps back to its start and matched there again, for ever, freezing the page
        re.lastIndex = m.index + (text.codePointAt(m.index) > 0xffff ? 2 : 1);
      }
    }
    let i = 0;
    while (i < text.length) {
      let j = i;
      while (j < text.length && covered[j] === covered[i]) j++;
      if (covered[i]) {
        const mark = document.createElement("mark");
        mark.textContent = text.slice(i, j);
        parent.appendChild(mark);
      } else {
        parent.appendChild(document.createTextNode(text.slice(i, j)));
      }
      i = j;
    }
  }

  async function getJSON(url, options) {
    const r = await fetch(url, options);
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      let msg = body && body.detail !== undefined ? body.detail : r.statusText;
      if (Array.isArray(msg)) msg = msg.map((d) => (d.loc || []).join(".") + ": " + d.msg).join("; ");
      throw new Error(r.status + ": " + msg);
    }
    return body;
  }

  async function loadCollections() {
    const data = await getJSON("/api/collections");
    const sel = $("collection");
    sel.textContent = "";
    for (const c of data.collections) {
      const o = document.createElement("option");
      o.value = c.name;
      o.textContent = c.name + " (" + c.documents + " docs)";
      sel.appendChild(o);
    }
    collections = data.collections;
    fillModes();
  }

  let collections = [], shownFor = null;
  // Offer only the modes the selected collection can run; a newly chosen collection starts on its
  // profile's own mode (a BM25-only collection has no dense mode to start on).
  function fillModes() {
    const c = collections.find((x) => x.name === $("collection").value);
    const modes = $("mode"), current = shownFor === (c && c.name) ? modes.value : (c && c.mode);
    shownFor = c && c.name;
    modes.textContent = "";
    for (const m of (c && c.modes) || ["dense"]) {
      const o = document.createElement("option");
      o.value = m; o.textContent = m;
      modes.appendChild(o);
    }
    if ([...modes.options].some((o) => o.value === current)) modes.value = current;
  }

  function render(data) {
    results.textContent = "";
    const words = terms(data.query);
    for (const h of data.hits) {
      const li = document.createElement("li");
      li.className = "hit";
      const head = document.createElement("div");
      head.className = "head";
      const title = document.createElement("span");
      title.className = "title";
      highlight(title, h.title || h.id, words);
      const meta = document.createElement("span");
      meta.className = "meta";
      // A section-level hit names its given section after the document id.
      meta.textContent = h.id + (h.section != null ? " § " + h.section : "") + " · score " +
        (h.score === null ? "n/a" : h.score.toFixed(3));
      head.append(title, meta);
      const snip = document.createElement("p");
      snip.className = "snippet";
      highlight(snip, h.snippet, words);
      li.append(head, snip);
      if (h.metadata && Object.keys(h.metadata).length) {
        const md = document.createElement("code");
        md.className = "metadata";
        md.textContent = JSON.stringify(h.metadata);
        li.appendChild(md);
      }
      results.appendChild(li);
    }
    setStatus(data.hits.length + " hits in " + data.took_ms.toFixed(1) + " ms");
  }

  // Searches in a burst can be answered out of order (a slow query, a rerank): only the latest one's answer
  // may render, or the results of an earlier query replace those of the query in the box.
  let latest = 0;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const mine = ++latest;
    const body = { q: $("q").value, k: parseInt($("k").value, 10) || 10, mode: $("mode").value, unit: $("unit").value };
    const ftext = $("filter").value.trim();
    if (ftext) {
      try { body.filter = JSON.parse(ftext); } catch (e) { setStatus("filter is not valid JSON: " + e.message, true); return; }
    }
    const name = $("collection").value;
    setStatus("searching…");
    try {
      const data = await getJSON("/api/collections/" + encodeURIComponent(name) + "/search", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      if (mine === latest) render(data);
    } catch (e) {
      if (mine !== latest) return;
      results.textContent = "";
      setStatus(e.message, true);
    }
  });

  async function showReport() {
    const name = $("collection").value;
    $("report-name").textContent = name;
    const box = $("report-body");
    box.textContent = "";
    try {
      const r = await getJSON("/api/collections/" + encodeURIComponent(name) + "/report");
      if (r.available) {
        const f = document.createElement("iframe");
        f.src = r.url; f.title = "evaluation report";
        box.appendChild(f);
      } else {
        const p = document.createElement("p");
        p.className = "empty"; p.textContent = "no report yet";
        box.appendChild(p);
      }
    } catch (e) { box.textContent = e.message; }
  }

  function select(tab) {
    const isSearch = tab === "search";
    $("view-search").hidden = !isSearch;
    $("view-report").hidden = isSearch;
    $("tab-search").classList.toggle("active", isSearch);
    $("tab-report").classList.toggle("active", !isSearch);
    if (!isSearch) showReport();
  }
  $("tab-search").addEventListener("click", () => select("search"));
  $("tab-report").addEventListener("click", () => select("report"));
  $("collection").addEventListener("change", () => { fillModes(); if (!$("view-report").hidden) showReport(); });

  loadCollections().then(() => { document.body.dataset.ready = "1"; },
                         (e) => setStatus("cannot list collections: " + e.message, true));
})();
