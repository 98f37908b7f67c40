// The settings panel -> request fields. Empty fields are left out, so the server's defaults (the model card's) apply.

const form = () => document.getElementById("settings-form");
const field = (name) => form().elements.namedItem(name);
const number = (name) => {
  const value = field(name).value.trim();
  return value === "" ? undefined : Number(value);
};

export class SettingsError extends Error {}

function tools() {
  const text = field("tools").value.trim();
  if (!text) return undefined;
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new SettingsError(`Settings, Tools: not valid JSON (${error.message}).`);
  }
  if (!Array.isArray(parsed)) throw new SettingsError('Settings, Tools: give a JSON list: [{"type": "function", ...}].');
  return parsed;
}

export function imageSettings() {
  const knobs = {};
  for (const name of ["min_image_tokens", "max_image_tokens", "min_tiles", "max_tiles"]) {
    const value = number(name);
    if (value !== undefined) knobs[name] = value;
  }
  const split = field("do_image_splitting").value;
  if (split) knobs.do_image_splitting = split === "true";
  return Object.keys(knobs).length ? knobs : undefined;
}

export function grammar() {
  const text = field("grammar").value;
  return text.trim() ? text : undefined;
}

// The sampling and extension fields shared by chat and detect requests.
export function requestFields({ withTools = true, maxTokens = true } = {}) {
  const out = {
    temperature: number("temperature"),
    seed: number("seed"),
    grammar: grammar(),
    image_settings: imageSettings(),
  };
  if (maxTokens) out.max_tokens = number("max_tokens");
  if (withTools) out.tools = tools();
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
  return out;
}

export function systemPrompt() {
  return field("system").value.trim();
}
