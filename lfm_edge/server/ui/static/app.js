// The page: views, the API key (asked once, kept in this browser), the server's status and reconnection.
import { apiKey, call, setApiKey, show, showError } from "./api.js";
import { setupChat } from "./chat.js";
import { setupDetect } from "./detect.js";
import { liveShown, setupLive, stopCamera } from "./live.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
let polling = null;

function status(text, state) {
  const node = $("server-status");
  node.textContent = text;
  node.dataset.state = state;
}

function askForKey(refused) {
  $("key-message").textContent = refused
    ? "The server refused that API key. Check it and enter it again."
    : "This server needs an API key (it was started with --api-key). Enter it once; this browser keeps it.";
  show($("key-panel"), true);
  $("key-input").focus();
  status("API key needed", "key");
}

// /health is public: it tells whether the server is up; /v1/models then tells whether the key is right.
async function connect() {
  try {
    await call("/health");
  } catch {
    status("server unreachable, retrying…", "down");
    return false;
  }
  try {
    const models = await (await call("/v1/models")).json();
    $("model-name").textContent = models.data.length ? models.data[0].id : "";
    status("connected", "up");
    showError($("notice"), "");
    return true;
  } catch (error) {
    if (error.status !== 401) showError($("notice"), error.message);
    return true; // the server is up; what is wrong is said already
  }
}

function pollUntilUp() {
  if (polling) return;
  status("server unreachable, retrying…", "down");
  polling = setInterval(async () => {
    if (await connect()) {
      clearInterval(polling);
      polling = null;
    }
  }, POLL_MS);
}

function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === name);
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  liveShown(name === "live");
  if (name !== "live") stopCamera();
}

function setupKey() {
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    setApiKey(key);
    $("key-input").value = "";
    show($("key-panel"), false);
    await connect();
  });
  $("key-forget").addEventListener("click", () => {
    setApiKey("");
    $("key-input").value = "";
    askForKey(false);
  });
  $("key-toggle").addEventListener("click", () => {
    if ($("key-panel").hidden) askForKey(false);
    else show($("key-panel"), false);
  });
  window.addEventListener("lfm:unauthorized", (event) => askForKey(event.detail.refused));
  window.addEventListener("lfm:lost", pollUntilUp);
}

function setup() {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
  $("settings-toggle").addEventListener("click", () => show($("settings"), $("settings").hidden));
  setupKey();
  setupChat();
  setupDetect();
  setupLive();
  const start = new URLSearchParams(location.hash.slice(1)).get("view");
  if (start) showView(start);
  connect().then((up) => {
    if (!up) pollUntilUp();
  });
  if (apiKey()) $("key-toggle").title = "An API key is stored in this browser";
}

setup();
