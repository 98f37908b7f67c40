// Detect: a picture and a query -> POST /v1/detect -> the boxes drawn over the picture with their labels.
import { call, readImage, show, showError } from "./api.js";
import { requestFields, SettingsError } from "./settings.js";

const $ = (id) => document.getElementById(id);
let picture = null; // data: URI of the chosen picture
let running = false;

async function choose(file) {
  showError($("detect-error"), "");
  try {
    picture = await readImage(file);
  } catch (error) {
    showError($("detect-error"), error.message);
    return;
  }
  $("detect-image").src = picture;
  $("detect-boxes").replaceChildren();
  $("detect-summary").textContent = "";
  show($("detect-raw"), false);
  show($("detect-frame"), true);
  show($("detect-hint"), false);
}

// Boxes are placed in percent of the picture, so they stay on their objects whatever size the picture is shown at.
export function drawBoxes(result) {
  const layer = $("detect-boxes");
  layer.replaceChildren();
  result.boxes.forEach((found, index) => {
    const [x1, y1, x2, y2] = found.bbox;
    const box = document.createElement("div");
    box.className = `box hue${index % 6}`;
    box.dataset.bbox = found.bbox.join(",");
    box.style.left = `${(100 * x1) / result.width}%`;
    box.style.top = `${(100 * y1) / result.height}%`;
    box.style.width = `${(100 * (x2 - x1)) / result.width}%`;
    box.style.height = `${(100 * (y2 - y1)) / result.height}%`;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = found.label || "(no label)";
    box.append(label);
    layer.append(box);
  });
  const count = result.boxes.length;
  const problems = result.errors.length ? ` Could not read: ${result.errors.join("; ")}.` : "";
  $("detect-summary").textContent = `${count} box${count === 1 ? "" : "es"} for "${result.query}" in ${result.width}x${result.height} pixels.${problems}`;
  $("detect-raw").textContent = result.text;
  show($("detect-raw"), true);
}

async function run(event) {
  event.preventDefault();
  if (running) return;
  const query = $("detect-query").value.trim();
  if (!picture) return showError($("detect-error"), "Pick a picture first.");
  if (!query) return showError($("detect-error"), "Name what to find, e.g. person.");
  let fields;
  try {
    fields = requestFields({ withTools: false, maxTokens: false });
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    return showError($("detect-error"), error.message);
  }
  showError($("detect-error"), "");
  running = true;
  show($("detect-spinner"), true);
  $("detect-run").disabled = true;
  try {
    const response = await call("/v1/detect", { body: { ...fields, image: picture, query } });
    drawBoxes(await response.json());
  } catch (error) {
    $("detect-boxes").replaceChildren();
    showError($("detect-error"), error.message);
  } finally {
    running = false;
    show($("detect-spinner"), false);
    $("detect-run").disabled = false;
  }
}

export function setupDetect() {
  $("detect-form").addEventListener("submit", run);
  $("detect-file").addEventListener("change", (event) => {
    if (event.target.files.length) choose(event.target.files[0]);
  });
  const stage = $("detect-stage");
  stage.addEventListener("dragover", (event) => event.preventDefault());
  stage.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    if ($("view-detect").hidden || !event.clipboardData || !event.clipboardData.files.length) return;
    event.preventDefault();
    choose(event.clipboardData.files[0]);
  });
}
