// Calls to this server's API: the key, errors in plain words, and server-sent events read from fetch().
// fetch() rather than EventSource: EventSource cannot send the Authorization header.

const KEY_STORE = "lfm-edge.api-key";

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY_STORE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORE, key);
  else localStorage.removeItem(KEY_STORE);
}

// Tells the page (app.js) about a refused key or a lost server, wherever it happened.
function signal(name, detail) {
  window.dispatchEvent(new CustomEvent(name, { detail }));
}

function headers(json) {
  const out = {};
  if (json) out["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

function explain(status, message) {
  if (status === 401) return apiKey() ? `The server refused the API key: ${message}` : `The server needs an API key: ${message}`;
  if (status === 403) return `The server refused this page's address: ${message}`;
  if (status === 413) return `Too large for this server: ${message}`;
  if (status === 503) return `The server is busy: ${message}`;
  if (status >= 500) return `The server failed: ${message}`;
  return message;
}

async function errorOf(response) {
  let message = `the server answered HTTP ${response.status}`;
  let code = null;
  try {
    const payload = await response.json();
    if (payload && payload.error) {
      message = payload.error.message || message;
      code = payload.error.code || null;
    }
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  if (response.status === 401) signal("lfm:unauthorized", { refused: Boolean(apiKey()) });
  return new ApiError(explain(response.status, message), response.status, code);
}

export const LOST =
  "The connection to the server was lost (stopped or restarted?). The page reconnects by itself; send again when it says connected.";

// POST (with body) or GET `path`; throws ApiError with a sentence for the user, or the AbortError of `signal`.
export async function call(path, { body, signal: abort } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method: body === undefined ? "GET" : "POST",
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: abort,
      cache: "no-store",
    });
  } catch (error) {
    if (abort && abort.aborted) throw error;
    signal("lfm:lost");
    const big = body !== undefined && JSON.stringify(body).length > 4e6;
    throw new ApiError(big ? `${LOST} A request this large may also be over the server's body limit.` : LOST, 0, "network_error");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

// Yields the `data:` payload of each server-sent event; a dropped connection becomes ApiError(LOST).
export async function* events(response, abort) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (error) {
      if (abort && abort.aborted) return;
      signal("lfm:lost");
      throw new ApiError(LOST, 0, "connection_lost");
    }
    if (chunk.done) return;
    buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data) yield data;
    }
  }
}

// A picked/dropped/pasted file -> data: URI, or an Error naming why not.
export function readImage(file) {
  return new Promise((resolve, reject) => {
    if (!file.type || !file.type.startsWith("image/")) {
      reject(new Error(`"${file.name}" is not a picture (${file.type || "unknown type"}): use PNG, JPEG, WebP or GIF files.`));
      return;
    }
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`"${file.name}" could not be read.`));
    reader.readAsDataURL(file);
  });
}

export function show(element, visible) {
  element.hidden = !visible;
}

export function showError(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}
