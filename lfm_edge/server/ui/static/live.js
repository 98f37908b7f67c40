// Live: (a) the server's own camera or video (GET /v1/watch/events), (b) this browser's camera, one frame at a
// time at the model's pace: the next frame is taken only when the previous caption has come back, so nothing queues.
import { ApiError, call, events, show, showError } from "./api.js";
import { requestFields } from "./settings.js";

const $ = (id) => document.getElementById(id);
const RETRY_MS = 2000;
const CAPTION_TOKENS = 48;
const FRAME_SIDE = 512; // longest side sent to the model: plenty for a caption, light on a Pi's network

// (a) The server's feed: connected while the Live view is open; reconnects after a lost connection.
let feed = null;

async function followServer(abort, again = false) {
  const status = $("server-live-status");
  if (!again) status.textContent = "Connecting…";
  try {
    const response = await call("/v1/watch/events", { signal: abort });
    if (!again) status.textContent = "Connected; waiting for the first caption.";
    for await (const data of events(response, abort)) {
      const event = JSON.parse(data);
      if (event.error) throw new ApiError(event.error.message, 500, event.error.code);
      if (event.reconnect) return followServer(abort, true); // the server ends each stream after a while
      if (event.end) {
        status.textContent = "The server's video has ended.";
        return;
      }
      if (event.frame) {
        $("server-frame").src = event.frame;
        show($("server-frame"), true);
      }
      $("server-caption").textContent = event.text;
      status.textContent = `Caption at ${event.time.toFixed(1)} s, received ${new Date().toLocaleTimeString()}.`;
    }
    if (!abort.aborted) throw new ApiError("The connection to the server was lost.", 0, "connection_lost");
  } catch (error) {
    if (abort.aborted) return;
    status.textContent = error.message;
    if (error.code === "no_live_source" || error.status === 401 || error.status === 403) return;
    status.textContent += " Retrying…";
    setTimeout(() => {
      if (feed && feed.signal === abort) followServer(abort);
    }, RETRY_MS);
  }
}

export function liveShown(visible) {
  if (visible && !feed) {
    feed = new AbortController();
    followServer(feed.signal);
  } else if (!visible && feed) {
    feed.abort();
    feed = null;
  }
}

// (b) This browser's camera.
let camera = null; // {stream, stop: AbortController, count, started}

export function cameraUnavailable() {
  if (!window.isSecureContext) {
    return (
      `The browser camera needs a secure page: https, or http://localhost on this machine. This page is plain http ` +
      `from another machine (${location.host}), so the browser does not offer the camera. Open it through an SSH ` +
      `tunnel (ssh -L 8080:localhost:${location.port || 80} user@${location.hostname}, then http://localhost:8080) ` +
      `or behind an https proxy. The server's own camera (left) works from anywhere.`
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return "This browser offers no camera access.";
  return null;
}

function cameraError(error) {
  const names = {
    NotAllowedError: "Camera permission was refused. Allow the camera for this page in the browser's site settings, then press Start camera again.",
    NotFoundError: "No camera was found on this device.",
    NotReadableError: "The camera is busy or unreadable (another program may be using it).",
    OverconstrainedError: "The camera cannot give a picture of the requested size.",
  };
  return names[error.name] || `The camera could not start: ${error.message}`;
}

function frameUri(video, canvas) {
  const scale = Math.min(1, FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL("image/jpeg", 0.85);
}

async function caption(frame, abort) {
  const fields = requestFields({ withTools: false });
  const body = {
    ...fields,
    max_tokens: Math.min(fields.max_tokens || CAPTION_TOKENS, CAPTION_TOKENS), // a caption, not an essay
    messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: frame } },
      { type: "text", text: $("cam-prompt").value.trim() || "Describe this image in one sentence." }] }],
  };
  const response = await call("/v1/chat/completions", { body, signal: abort });
  const answer = await response.json();
  return answer.choices[0].message.content || "";
}

async function captionLoop(session) {
  const video = $("cam-video");
  const canvas = document.createElement("canvas");
  while (!session.stop.signal.aborted) {
    if (!video.videoWidth || video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    const taken = performance.now();
    show($("cam-spinner"), true);
    try {
      const text = await caption(frameUri(video, canvas), session.stop.signal);
      session.count += 1;
      $("cam-caption").textContent = text;
      const seconds = (performance.now() - session.started) / 1000;
      $("cam-stats").textContent = `${session.count} captions, ${(session.count / seconds).toFixed(2)} per second, ` +
        `this one ${Math.round(performance.now() - taken)} ms after its frame.`;
      showError($("cam-status"), "");
    } catch (error) {
      if (session.stop.signal.aborted) break;
      $("cam-status").textContent = error.message;
      show($("cam-status"), true);
      if (error.status === 401 || error.status === 403 || (error.status >= 400 && error.status < 500 && error.status !== 408)) {
        stopCamera();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS)); // server gone or busy: try again shortly
    } finally {
      show($("cam-spinner"), false);
    }
  }
}

// Resolves once the camera's first picture has been shown (before that, a captured frame can be blank).
function firstFrame(video) {
  return new Promise((resolve) => {
    video.play().catch(() => {});
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => resolve());
    setTimeout(resolve, 2000); // a browser without frame callbacks: the readyState check still applies
  });
}

async function startCamera() {
  const reason = cameraUnavailable();
  const status = $("cam-status");
  if (reason) {
    status.textContent = reason;
    show(status, true);
    return;
  }
  status.textContent = "Asking for the camera…";
  show(status, true);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (error) {
    status.textContent = cameraError(error);
    return;
  }
  status.textContent = "";
  const video = $("cam-video");
  video.srcObject = stream;
  show(video, true);
  show($("cam-start"), false);
  show($("cam-stop"), true);
  const session = { stream, stop: new AbortController(), count: 0, started: performance.now() };
  camera = session;
  await firstFrame(video);
  if (!session.stop.signal.aborted) captionLoop(session);
}

export function stopCamera() {
  if (!camera) return;
  camera.stop.abort();
  for (const track of camera.stream.getTracks()) track.stop();
  camera = null;
  $("cam-video").srcObject = null;
  show($("cam-video"), false);
  show($("cam-spinner"), false);
  show($("cam-start"), true);
  show($("cam-stop"), false);
}

export function setupLive() {
  $("cam-start").addEventListener("click", startCamera);
  $("cam-stop").addEventListener("click", stopCamera);
  const reason = cameraUnavailable();
  if (reason) {
    $("cam-status").textContent = reason;
    $("cam-start").disabled = true;
  }
}
