// The xlsearch search page: reads the query from the URL, calls GET /v1/search, and shows the
// engine's state. Everything that comes from documents is written as text, never as HTML.
"use strict";

const DEFAULT_K = "10";
const DEFAULT_COLLECTION = "default";
const DEFAULT_MODE = "hybrid";
const RIGHT_TO_LEFT = new Set(["ar", "he", "fa", "ur", "yi", "ps", "sd", "ug", "dv", "ckb"]);
const STATUS_FAST_MS = 2000; // while jobs run
const STATUS_SLOW_MS = 15000;
const LONG_SNIPPET = 360; // characters before a snippet is folded

const $ = (id) => document.getElementById(id);
const languageNames = makeLanguageNames();
let searchSequence = 0; // answers to older searches are dropped
let collectionLanguages = new Map(); // lang -> documents, for the chosen collection
let knownDocuments = null; // the chosen collection's count when its languages were loaded

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function makeLanguageNames() {
  try {
    return new Intl.DisplayNames([navigator.language || "en"], { type: "language" });
  } catch {
    return null;
  }
}

function languageName(code) {
  if (!languageNames || !code || code === "und") return code === "und" ? "undetermined" : code;
  try {
    return languageNames.of(code) || code;
  } catch {
    return code;
  }
}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
  } catch {
    throw new ApiError("the server cannot be reached", 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error && body.error.message;
    throw new ApiError(message || `HTTP ${response.status} ${response.statusText}`, response.status);
  }
  return body;
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

// ---- the query, the form and the URL -------------------------------------------------------

function queryFromUrl() {
  const params = new URLSearchParams(window.location.search);
  return {
    q: params.get("q") || "",
    like: params.get("q") ? "" : params.get("like") || "",  // "more like this" document id
    langs: params.getAll("lang").filter(Boolean),
    k: params.get("k") || DEFAULT_K,
    collection: params.get("collection") || DEFAULT_COLLECTION,
    mode: params.get("mode") || DEFAULT_MODE,
    prefer: params.get("prefer") || "",  // the language a translated result is shown in
  };
}

function queryFromForm() {
  return {
    q: $("q").value.trim(),
    like: "",
    langs: [...document.querySelectorAll("#languages input:checked")].map((box) => box.value),
    k: $("k").value,
    collection: $("collection").value || DEFAULT_COLLECTION,
    mode: $("mode").value || DEFAULT_MODE,
    prefer: "",
  };
}

function urlFor(query) {
  const params = new URLSearchParams();
  if (query.q) params.set("q", query.q);
  else if (query.like) params.set("like", query.like);
  for (const lang of query.langs) params.append("lang", lang);
  if (query.k !== DEFAULT_K) params.set("k", query.k);
  if (query.collection !== DEFAULT_COLLECTION) params.set("collection", query.collection);
  if (query.mode !== DEFAULT_MODE) params.set("mode", query.mode);
  if (query.prefer) params.set("prefer", query.prefer);
  const search = params.toString();
  return search ? `/?${search}` : "/";
}

function fillForm(query) {
  $("q").value = query.q;
  ensureOption($("k"), query.k);
  $("k").value = query.k;
  ensureOption($("collection"), query.collection);
  $("collection").value = query.collection;
  ensureOption($("mode"), query.mode);
  $("mode").value = query.mode;
  renderLanguageChoices(query.langs);
}

function ensureOption(select, value) {
  if (![...select.options].some((option) => option.value === value)) {
    select.append(element("option", { value }, value));
  }
}

// ---- searching -----------------------------------------------------------------------------

function showMessage(text, kind = "info") {
  const message = $("message");
  message.textContent = text;
  message.className = text ? `message ${kind}` : "";
}

function clearResults() {
  $("results").replaceChildren();
  $("more-results").hidden = true;
  $("summary").textContent = "";
}

async function search(query) {
  const sequence = ++searchSequence;
  const heading = query.q || (query.like && `like ${query.like}`);
  document.title = heading ? `${heading} – xlsearch` : "xlsearch";
  if (!query.q && !query.like) {
    clearResults();
    showMessage("");
    return;
  }
  showMessage("Searching…");
  $("results").setAttribute("aria-busy", "true");
  try {
    const answer = await api(resultsPath(query, 0));
    if (sequence !== searchSequence) return;
    renderResults(query, answer);
  } catch (error) {
    if (sequence !== searchSequence) return;
    clearResults();
    const prefix = error.status >= 500 || error.status === 0 ? "The search failed" : "Cannot search";
    showMessage(`${prefix}: ${error.message}.`, "error");
  } finally {
    if (sequence === searchSequence) $("results").removeAttribute("aria-busy");
  }
}

// A question's search, or the documents like `query.like` (from its stored vectors).
function resultsPath(query, offset) {
  const params = new URLSearchParams({ k: query.k });
  for (const lang of query.langs) params.append("lang", lang);
  if (offset) params.set("offset", offset);
  if (query.prefer) params.set("prefer", query.prefer);
  if (!query.q) {
    const collection = encodeURIComponent(query.collection);
    const id = encodeURIComponent(query.like);
    return `/v1/collections/${collection}/documents/${id}/similar?${params}`;
  }
  params.set("q", query.q);
  params.set("collection", query.collection);
  params.set("mode", query.mode);
  return `/v1/search?${params}`;
}

function renderResults(query, answer) {
  const list = $("results");
  list.replaceChildren(...answer.results.map((result) => renderResult(result, query)));
  showMore(query, answer.next_offset);
  const language = `${languageName(answer.query_language)} (${answer.query_language})`;
  const asked = query.q ? `question in ${language}` : `like ${query.like}, in ${language}`;
  const count = answer.results.length;
  $("summary").textContent =
    `${count} result${count === 1 ? "" : "s"} · ${asked} · ${Math.round(answer.took_ms)} ms`;
  if (count === 0) {
    const hint = query.langs.length ? " Try removing the language filter." : "";
    showMessage(`No documents match this question.${hint}`, "empty");
  } else {
    showMessage("");
  }
}

// The next page, appended below the results, while there is one.
function showMore(query, nextOffset) {
  const button = $("more-results");
  button.hidden = nextOffset === null || nextOffset === undefined;
  button.onclick = async () => {
    const sequence = searchSequence;
    button.disabled = true;
    try {
      const answer = await api(resultsPath(query, nextOffset));
      if (sequence !== searchSequence) return;
      $("results").append(...answer.results.map((result) => renderResult(result, query)));
      const shown = $("results").children.length;
      $("summary").textContent = $("summary").textContent.replace(/^\d+ results?/, `${shown} results`);
      showMore(query, answer.next_offset);
    } catch (error) {
      if (sequence === searchSequence) showMessage(`Cannot load more results: ${error.message}.`, "error");
    } finally {
      button.disabled = false;
    }
  };
}

function safeLink(url) {
  try {
    const parsed = new URL(url, window.location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function renderResult(result, query) {
  const direction = RIGHT_TO_LEFT.has(result.lang) ? "rtl" : "auto";
  const item = element("li", { class: "result", lang: result.lang, dir: direction });

  const head = element("div", { class: "result-head" });
  const title = element("h2", { class: "title", dir: "auto" });
  const href = result.url ? safeLink(result.url) : null;
  const label = result.title || result.id;
  title.append(href ? element("a", { href, rel: "noopener noreferrer" }, label) : label);
  const badge = element("span", { class: "badge", title: languageName(result.lang) }, result.lang);
  const score = element("span", { class: "score", title: explainScore(result) },
    result.score.toFixed(3));
  head.append(title, badge);
  const locator = describeLocator(result.locator);
  if (locator) head.append(element("span", { class: "locator", dir: "auto" }, locator));
  head.append(score);

  const snippet = element("p", { class: "snippet", dir: "auto" });
  snippet.append(...marked(result.snippet.text, result.snippet.highlights || []));
  item.append(head, snippet);
  if (result.snippet.text.length > LONG_SNIPPET) {
    snippet.classList.add("folded");
    const toggle = element("button", { type: "button", class: "more", "aria-expanded": "false" },
      "Show the whole passage");
    toggle.addEventListener("click", () => {
      const folded = snippet.classList.toggle("folded");
      toggle.setAttribute("aria-expanded", String(!folded));
      toggle.textContent = folded ? "Show the whole passage" : "Show less";
    });
    item.append(toggle);
  }
  const where = element("p", { class: "where", dir: "ltr" },
    `${result.id} · characters ${result.snippet.start}–${result.snippet.end} · `);
  where.append(searchLink({ ...query, q: "", like: result.id, prefer: "" }, "similar",
    "similar"));
  item.append(where);
  if (result.translations && result.translations.length) {
    // "also in: fr · ja": each shows this result in that language (the set keeps its place).
    const also = element("p", { class: "also-in", dir: "ltr" }, "also in: ");
    result.translations.forEach((copy, n) => {
      if (n) also.append(" · ");
      const link = searchLink({ ...query, prefer: copy.lang }, "translation", copy.lang);
      link.title = copy.title || copy.id;
      link.lang = copy.lang;
      also.append(link);
    });
    item.append(also);
  }
  return item;
}

// A link to another search of the page (pushed onto the history, searched in place).
function searchLink(next, kind, label) {
  const link = element("a", { class: kind, href: urlFor(next) }, label);
  link.addEventListener("click", (event) => {
    event.preventDefault();
    if (!next.q) $("q").value = "";
    window.history.pushState(null, "", urlFor(next));
    search(next);
  });
  return link;
}

// Where in its file a result is: "p. 12", "pp. 12–13", "slide 3", "§ 2.3 Liability".
function describeLocator(locator) {
  if (!locator) return "";
  const kinds = [["page", "p.", "pp."], ["slide", "slide", "slides"], ["section", "§", "§"]];
  for (const [kind, one, many] of kinds) {
    if (locator[kind] === undefined) continue;
    if (locator.to === undefined) return `${one} ${locator[kind]}`;
    return kind === "section"
      ? `§ ${locator[kind]} → ${locator.to}` : `${many} ${locator[kind]}–${locator.to}`;
  }
  return "";
}

// What the score is made of, shown when the pointer rests on it.
function explainScore(result) {
  const parts = [];
  if (result.dense_score !== null && result.dense_score !== undefined) {
    parts.push(`meaning ${result.dense_score.toFixed(3)} (rank ${result.dense_rank})`);
  }
  if (result.lexical_score) {
    parts.push(`matching words ${result.lexical_score.toFixed(3)} (rank ${result.lexical_rank})`);
  }
  return parts.length ? parts.join(" · ") : "similarity to the question";
}

// The snippet as text nodes, with the question's matched words in <mark> (never as HTML).
// Offsets count Unicode code points, as the API does, not UTF-16 units.
function marked(text, highlights) {
  const chars = Array.from(text);
  const piece = (start, end) => chars.slice(start, end).join("");
  const nodes = [];
  let at = 0;
  for (const [start, end] of highlights) {
    if (start < at || end > chars.length) continue;
    if (start > at) nodes.push(document.createTextNode(piece(at, start)));
    nodes.push(element("mark", {}, piece(start, end)));
    at = end;
  }
  if (at < chars.length) nodes.push(document.createTextNode(piece(at)));
  return nodes;
}

// ---- collections, languages and the engine's status ---------------------------------------

async function loadCollections() {
  const select = $("collection");
  const chosen = select.value || queryFromUrl().collection;
  const answer = await api("/v1/collections");
  const names = answer.collections.map((collection) => collection.name);
  if (!names.includes(chosen)) names.push(chosen);
  const shown = [...select.options].map((option) => option.value);
  if (shown.join("\n") !== names.join("\n")) {
    select.replaceChildren(...names.map((name) => element("option", { value: name }, name)));
    select.value = chosen;
  }
  return answer.collections;
}

async function loadLanguages(collection, checked) {
  try {
    const answer = await api(`/v1/collections/${encodeURIComponent(collection)}`);
    collectionLanguages = new Map(Object.entries(answer.languages || {}));
  } catch {
    collectionLanguages = new Map();
  }
  renderLanguageChoices(checked);
}

function renderLanguageChoices(checked) {
  const fieldset = $("languages");
  const wanted = new Set(checked);
  const codes = [...new Set([...collectionLanguages.keys(), ...wanted])].sort();
  const choices = codes.map((code) => {
    const box = element("input", { type: "checkbox", name: "lang", value: code });
    box.checked = wanted.has(code);
    const documents = collectionLanguages.get(code);
    const label = element("label", { class: "language", title: languageName(code) });
    label.append(box, ` ${code}`);
    if (documents !== undefined) label.append(element("span", { class: "count" }, ` ${documents}`));
    return label;
  });
  const hint = element("span", { class: "hint", id: "languages-hint" },
    codes.length ? "none ticked: all" : "no documents yet");
  fieldset.replaceChildren(element("legend", {}, "Languages"), ...choices, hint);
}

function describeJob(job) {
  const done = job.processed + job.failed;
  const share = job.total ? ` (${Math.floor((100 * done) / job.total)} %)` : "";
  const total = job.total ? `/${job.total}` : "";
  return `job ${job.id.slice(0, 8)} ${job.status} into ${job.collection}: ${done}${total}${share}`;
}

async function refreshStatus() {
  const line = $("engine-status");
  let delay = STATUS_SLOW_MS;
  try {
    const [collections, running, queued] = await Promise.all([
      loadCollections(),
      api("/v1/jobs?status=running&limit=10"),
      api("/v1/jobs?status=queued&limit=10"),
    ]);
    const parts = collections.map(
      (collection) => `${collection.name}: ${collection.documents.toLocaleString()} documents`,
    );
    // The two lists are read at once, so a job claimed in between is in both: show it once.
    const shown = new Set();
    const jobs = [...running.jobs, ...queued.jobs].filter(
      (job) => !shown.has(job.id) && shown.add(job.id),
    );
    line.replaceChildren(element("span", {}, parts.join(" · ")));
    for (const job of jobs) {
      const item = element("span", { class: "job" }, describeJob(job));
      const bar = element("progress", { max: String(job.total || 1), "aria-label": "job progress" });
      bar.value = job.processed + job.failed;
      item.append(" ", bar);
      line.append(item);
    }
    line.classList.toggle("busy", jobs.length > 0);
    line.classList.remove("offline");
    if (jobs.length) delay = STATUS_FAST_MS;
    const current = collections.find((collection) => collection.name === $("collection").value);
    if (current && current.documents !== knownDocuments) {
      knownDocuments = current.documents;
      await loadLanguages(current.name, queryFromForm().langs);
    }
  } catch (error) {
    line.textContent = `Engine status unavailable: ${error.message}. Retrying…`;
    line.classList.add("offline");
    delay = STATUS_FAST_MS;
  }
  window.setTimeout(refreshStatus, delay);
}

// ---- wiring --------------------------------------------------------------------------------

function submit(event) {
  if (event) event.preventDefault();
  const query = queryFromForm();
  if (!query.q) {
    clearResults();
    showMessage("Type a question first.", "error");
    $("q").focus();
    return;
  }
  if (urlFor(query) !== window.location.pathname + window.location.search) {
    window.history.pushState(null, "", urlFor(query));
  }
  search(query);
}

function researchIfAsked() {
  if ($("q").value.trim()) submit();
}

async function showUrl() {
  const query = queryFromUrl();
  fillForm(query);
  await search(query);
}

async function start() {
  $("search-form").addEventListener("submit", submit);
  $("k").addEventListener("change", researchIfAsked);
  $("mode").addEventListener("change", researchIfAsked);
  $("languages").addEventListener("change", researchIfAsked);
  $("collection").addEventListener("change", async () => {
    await loadLanguages($("collection").value, []);
    researchIfAsked();
  });
  window.addEventListener("popstate", showUrl);
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (event.key === "/" && !typing) {
      event.preventDefault();
      $("q").focus();
    }
  });
  const query = queryFromUrl();
  fillForm(query);
  try {
    await loadCollections();
  } catch {
    // the status line reports an unreachable server
  }
  await loadLanguages(query.collection, queryFromForm().langs);
  refreshStatus();
  // a search typed while the page was loading wins over the one in the address
  if (searchSequence === 0 && (query.q || query.like)) await search(query);
}

start();
