// The viewer's page: no framework, no build step, nothing loaded from elsewhere.
// Every map is drawn by the viewer with serving_client.render; the page only shows it.
"use strict";

const state = { config: null, model: null, entries: [], nextId: 0 };
const $ = (selector, root = document) => root.querySelector(selector);

class PageError extends Error {
  constructor(kind, message) { super(message); this.kind = kind; }
}

async function api(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new PageError("viewer_down",
      `The viewer does not answer (${error.message}); is saliency-client ui still running?`);
  }
  let body;
  try {
    body = await response.json();
  } catch (error) {
    throw new PageError("bad_response", `The viewer answered HTTP ${response.status} without JSON.`);
  }
  if (!response.ok) throw new PageError(body.kind || "error", body.error || `HTTP ${response.status}`);
  return body;
}

function showBanner(message) {
  const banner = $("#banner");
  banner.textContent = message;
  banner.hidden = false;
}

function clearBanner() {
  $("#banner").hidden = true;
  $("#banner").textContent = "";
}

function fillSelect(select, values, keep) {
  const previous = keep ? select.value : null;
  for (const option of [...select.options]) if (option.value !== "") option.remove();
  for (const value of values) {
    const option = document.createElement("option");
    option.value = option.textContent = String(value);
    select.append(option);
  }
  if (previous !== null && [...select.options].some((o) => o.value === previous)) select.value = previous;
}

async function loadModel() {
  const name = $("#model").value.trim();
  state.model = null;
  if (!name) {
    showBanner("Name the served model (the --model_name the server was started with), then press Reload.");
    return false;
  }
  const query = new URLSearchParams({ model: name, version: $("#version").value });
  try {
    state.model = await api(`/api/model?${query}`);
  } catch (error) {
    showBanner(error.message);
    $("#model-info").textContent = "";
    return false;
  }
  clearBanner();
  const model = state.model;
  fillSelect($("#version"), model.versions, true);
  const method = $("#method");
  const chosen = method.value;
  method.replaceChildren(...model.methods.map((name) => new Option(name, name)));
  if (model.methods.includes(chosen)) method.value = chosen;
  const shape = model.input.shape ? `[${model.input.shape.map((d) => d ?? "?").join(", ")}]` : "any shape";
  $("#model-info").textContent =
    `Version ${model.version}: input ${model.input.format} ${shape}; methods ${model.methods.join(", ")}.`;
  return true;
}

function renderQuery(entry, method) {
  const query = new URLSearchParams({
    model: $("#model").value.trim(),
    version: $("#version").value,
    method,
    filename: entry.file.name,
    colormap: $("#colormap").value,
    polarity: $("#polarity").value,
    overlay_type: $("#overlay-type").value,
    alpha: $("#alpha").value,
    clip_low: $("#clip-low").value,
    clip_high: $("#clip-high").value,
  });
  if (entry.target !== null) query.set("target_class", String(entry.target));
  return query;
}

function newCard(entry) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  card.dataset.filename = entry.file.name;
  card.dataset.id = String(entry.id);
  $(".filename", card).textContent = entry.file.name;
  $("#results").append(card);
  return card;
}

function setError(card, message) {
  const error = $(".error", card);
  error.textContent = message;
  error.hidden = false;
  // No stale map beside an error: the figures and classes are shown again with new results.
  $(".figures", card).hidden = true;
  $(".prediction", card).hidden = true;
  card.dataset.state = "error";
}

async function explainEntry(entry) {
  const card = entry.card;
  const generation = ++entry.generation;
  card.dataset.state = "loading";
  if (!state.model) {
    setError(card, "No model loaded: " + ($("#banner").textContent || "press Reload."));
    return;
  }
  const methods = $("#compare").checked ? state.model.methods : [$("#method").value];
  const results = [];
  try {
    for (const method of methods) {
      results.push(await api(`/api/explain?${renderQuery(entry, method)}`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: entry.file,
      }));
      if (generation !== entry.generation) return;  // a newer request replaced this one
    }
  } catch (error) {
    if (generation !== entry.generation) return;
    setError(card, error.message);
    if (error.kind === "unavailable" || error.kind === "viewer_down") showBanner(error.message);
    return;
  }
  showResults(entry, results);
}

function showResults(entry, results) {
  const card = entry.card;
  $(".error", card).hidden = true;
  $(".figures", card).hidden = false;
  $(".prediction", card).hidden = false;
  const first = results[0];
  $("figure.input img", card).src = first.image_png;
  for (const old of card.querySelectorAll("figure.map")) old.remove();
  const stem = entry.file.name.replace(/\.[^.]*$/, "");
  for (const result of results) {
    const figure = document.createElement("figure");
    figure.className = "map";
    figure.dataset.method = result.method;
    figure.dataset.targetClass = String(result.target_class);
    const image = document.createElement("img");
    image.alt = `${result.method} map of class ${result.target_class}`;
    image.src = result.overlay_png;
    const caption = document.createElement("figcaption");
    let text = `${result.method} · class ${result.target_class}`;
    if (result.approximation_error !== null) {
      text += ` · approximation error ${(100 * result.approximation_error).toFixed(2)} %`;
    }
    caption.textContent = text;
    const link = document.createElement("a");
    link.className = "download";
    link.href = result.overlay_png;
    link.download = `${stem}_${result.signature}.png`;
    link.textContent = "Download PNG";
    figure.append(image, caption, link);
    $(".figures", card).append(figure);
  }
  const top = first.top.find((row) => row.class === first.predicted_class);
  $(".summary", card).textContent =
    `Predicted ${top ? top.name : first.predicted_class} (model ${first.model} version ${first.version}); ` +
    "click a class to explain it.";
  const list = $(".classes", card);
  list.replaceChildren(...first.top.map((row) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.class = String(row.class);
    if (row.class === first.target_class) button.classList.add("target");
    const name = document.createElement("span");
    name.textContent = row.name;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.max(1, Math.round(100 * row.probability))}%`;
    const value = document.createElement("span");
    value.textContent = `${(100 * row.probability).toFixed(1)} %`;
    button.append(name, bar, value);
    button.addEventListener("click", () => { entry.target = row.class; explainEntry(entry); });
    item.append(button);
    return item;
  }));
  card.dataset.state = "done";
}

function addFiles(files) {
  for (const file of files) {
    const entry = { id: state.nextId++, file, target: null, generation: 0, card: null };
    entry.card = newCard(entry);
    state.entries.push(entry);
    explainEntry(entry);
  }
}

async function explainAll() {
  for (const entry of state.entries) await explainEntry(entry);
}

async function reload() {
  await loadModel();
  await explainAll();
}

async function start() {
  try {
    state.config = await api("/api/config");
  } catch (error) {
    showBanner(error.message);
    return;
  }
  $("#server").textContent = state.config.server;
  fillSelect($("#colormap"), state.config.colormaps, false);
  $("#polarity").replaceChildren(...state.config.polarities.map((p) => new Option(p, p)));
  $("#overlay-type").replaceChildren(...state.config.overlay_types.map((o) => new Option(o, o)));
  $("#model").value = state.config.model || "";
  $("#reload").addEventListener("click", reload);
  $("#model").addEventListener("change", () => { $("#version").value = ""; reload(); });
  $("#version").addEventListener("change", reload);
  for (const id of ["#method", "#compare", "#colormap", "#polarity", "#overlay-type", "#alpha", "#clip-low", "#clip-high"]) {
    $(id).addEventListener("change", explainAll);
  }
  $("#files").addEventListener("change", (event) => { addFiles(event.target.files); event.target.value = ""; });
  $("#clear").addEventListener("click", () => { state.entries = []; $("#results").replaceChildren(); });
  const drop = $("#drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  await loadModel();
  document.body.dataset.ready = "true";
}

start();
