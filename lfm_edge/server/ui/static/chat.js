// Chat: streamed answers, pictures by picker / drag-and-drop / paste, stop, timings, tool calls.
import { ApiError, call, events, LOST, readImage, show, showError } from "./api.js";
import { requestFields, SettingsError, systemPrompt } from "./settings.js";

const $ = (id) => document.getElementById(id);
const history = []; // OpenAI-shaped messages of this conversation (images as data: URIs)
let pending = []; // pictures attached to the next message: {name, url}
let controller = null;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bubble(role) {
  const node = element("div", `message ${role}`);
  node.dataset.role = role;
  $("messages").append(node);
  return node;
}

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function renderAttachments() {
  const box = $("attachments");
  box.replaceChildren();
  pending.forEach((picture, index) => {
    const item = element("span", "attachment");
    const image = element("img");
    image.src = picture.url;
    image.alt = picture.name;
    const remove = element("button", "remove", "×");
    remove.type = "button";
    remove.title = `Remove ${picture.name}`;
    remove.addEventListener("click", () => {
      pending.splice(index, 1);
      renderAttachments();
    });
    item.append(image, remove);
    box.append(item);
  });
}

export async function addFiles(files) {
  const problems = [];
  for (const file of files) {
    try {
      pending.push({ name: file.name || "pasted picture", url: await readImage(file) });
    } catch (error) {
      problems.push(error.message);
    }
  }
  showError($("chat-error"), problems.join(" "));
  renderAttachments();
}

function toolCallNode(call) {
  const node = element("div", "tool-call");
  node.append(element("span", "tag", "tool call"), element("code", "", `${call.function.name}(${call.function.arguments})`));
  return node;
}

function timingsText(timings, usage) {
  if (!timings) return "";
  const parts = [];
  const ms = (value) => `${Math.round(value)} ms`;
  if (timings.ttft_ms !== undefined) parts.push(`first token ${ms(timings.ttft_ms)}`);
  if (timings.prompt_n !== undefined) parts.push(`prompt ${timings.prompt_n} tok in ${ms(timings.prompt_ms)}`);
  if (timings.cache_n) parts.push(`${timings.cache_n} tok reused`);
  if (timings.predicted_n !== undefined)
    parts.push(`${timings.predicted_n} tok at ${timings.predicted_per_second.toFixed(1)} tok/s`);
  const known = new Set(["ttft_ms", "prompt_n", "prompt_ms", "prompt_per_second", "cache_n", "predicted_n",
    "predicted_ms", "predicted_per_second"]);
  for (const [name, value] of Object.entries(timings)) {
    // Stages the server adds (image decode, preprocess, encode...) are shown by their own names.
    if (!known.has(name) && typeof value === "number") parts.push(`${name.replace(/_/g, " ")} ${Math.round(value * 10) / 10}`);
  }
  if (usage && usage.total_tokens !== undefined) parts.push(`${usage.total_tokens} tok in context`);
  return parts.join(" · ");
}

function busy(on) {
  show($("send"), !on);
  show($("stop"), on);
  show($("chat-spinner"), on);
  $("composer").classList.toggle("busy", on);
}

async function streamAnswer(body, reply, abort) {
  const text = element("div", "text");
  reply.append(text);
  const answer = { content: "", calls: [], timings: null, usage: null, done: false };
  const response = await call("/v1/chat/completions", { body, signal: abort });
  for await (const data of events(response, abort)) {
    if (data === "[DONE]") {
      answer.done = true;
      break;
    }
    const event = JSON.parse(data);
    if (event.error) throw new ApiError(`The server failed mid-answer: ${event.error.message}`, 500, event.error.code);
    if (event.timings) answer.timings = event.timings;
    if (event.usage) answer.usage = event.usage;
    const delta = (event.choices && event.choices[0] && event.choices[0].delta) || {};
    if (delta.content) {
      answer.content += delta.content;
      text.textContent = answer.content;
    }
    for (const toolCall of delta.tool_calls || []) {
      answer.calls.push(toolCall);
      reply.append(toolCallNode(toolCall));
    }
    scrollDown();
  }
  if (!answer.done && !abort.aborted) throw new ApiError(LOST, 0, "connection_lost");
  return answer;
}

function assistantMessage(answer) {
  const message = { role: "assistant", content: answer.content || (answer.calls.length ? null : "") };
  if (answer.calls.length)
    message.tool_calls = answer.calls.map((c) => ({ id: c.id, type: "function", function: c.function }));
  return message;
}

async function send(event) {
  event.preventDefault();
  if (controller) return;
  const prompt = $("prompt").value.trim();
  if (!prompt && !pending.length) return;
  let fields;
  try {
    fields = requestFields();
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    showError($("chat-error"), error.message);
    return;
  }
  showError($("chat-error"), "");
  const content = pending.map((picture) => ({ type: "image_url", image_url: { url: picture.url } }));
  if (prompt) content.push({ type: "text", text: prompt });
  const mine = bubble("user");
  for (const picture of pending) {
    const image = element("img", "picture");
    image.src = picture.url;
    image.alt = picture.name;
    mine.append(image);
  }
  if (prompt) mine.append(element("div", "text", prompt));
  pending = [];
  renderAttachments();
  $("prompt").value = "";
  history.push({ role: "user", content });
  const system = systemPrompt();
  const body = {
    ...fields,
    messages: system ? [{ role: "system", content: system }, ...history] : [...history],
    stream: true,
    stream_options: { include_usage: true },
  };
  const reply = bubble("assistant");
  controller = new AbortController();
  busy(true);
  try {
    const answer = await streamAnswer(body, reply, controller.signal);
    history.push(assistantMessage(answer));
    if (controller.signal.aborted) reply.append(element("div", "note", "stopped"));
    else reply.append(element("div", "timings", timingsText(answer.timings, answer.usage)));
  } catch (error) {
    if (controller.signal.aborted) {
      reply.append(element("div", "note", "stopped"));
      history.pop(); // the question stays on screen; the next message is asked without the unanswered one
    } else {
      history.pop(); // not answered: the next message must not carry this one's (maybe refused) pictures
      mine.classList.add("failed");
      reply.classList.add("failed");
      reply.append(element("div", "note error", error.message));
      showError($("chat-error"), error.message);
    }
  } finally {
    controller = null;
    busy(false);
    scrollDown();
  }
}

function stop() {
  if (controller) controller.abort();
}

export function setupChat() {
  $("composer").addEventListener("submit", send);
  $("stop").addEventListener("click", stop);
  $("attach").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", async (event) => {
    await addFiles([...event.target.files]);
    event.target.value = "";
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
  });
  const view = $("view-chat");
  view.addEventListener("dragover", (event) => {
    event.preventDefault();
    view.classList.add("dropping");
  });
  view.addEventListener("dragleave", () => view.classList.remove("dropping"));
  view.addEventListener("drop", (event) => {
    event.preventDefault();
    view.classList.remove("dropping");
    addFiles([...event.dataTransfer.files]);
  });
  document.addEventListener("paste", (event) => {
    if (view.hidden) return;
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (files.length) {
      event.preventDefault();
      addFiles(files);
    }
  });
}
