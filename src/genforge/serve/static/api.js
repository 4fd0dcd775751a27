/* Talking to the server, and showing what it refuses.

   Every call goes through api(), which adds the API key (kept in sessionStorage, never in
   localStorage or a cookie; sent as X-API-Key), turns the server's error body
   {"error": {status, message, field}} into an ApiError, and opens the key field when the server
   answers 401. showError() writes a message next to the control whose name the server gave as
   `field` (the element with data-error-for="field" in the same section), or under the section
   when no control matches; never as an alert. */

import { $, $$ } from "./dom.js";

export const KEY_STORE = "genforge-api-key";

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field || null;
  }
}

export async function api(path, { method = "GET", json, form, accept } = {}) {
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers["X-API-Key"] = key;
  if (accept) headers.Accept = accept;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form; // the browser writes the multipart boundary
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (e) {
    throw new ApiError(0, "the server cannot be reached", null);
  }
  if (response.ok) return response;
  let message = `${response.status} ${response.statusText || "error"}`;
  let field = null;
  try {
    const data = await response.json();
    if (data && data.error) {
      message = data.error.message || message;
      field = data.error.field || null;
    }
  } catch (e) { /* not JSON: keep the status line */ }
  if (response.status === 429) {
    const retry = response.headers.get("Retry-After");
    if (retry) message += ` (try again in ${retry} s)`;
  }
  if (response.status === 401) showAuth(key ? "the server refused this key" : "");
  throw new ApiError(response.status, message, field);
}

export const json = async (path, options) => (await api(path, options)).json();

/** Opens the API key panel (once) with `message` by its field. */
export function showAuth(message) {
  const panel = $("#auth");
  $('[data-error-for="api_key"]', panel).textContent = message;
  if (message) $("#api-key").setAttribute("aria-invalid", "true");
  if (panel.hidden) {
    panel.hidden = false;
    $("#api-key").focus();
  }
}

// "body.temperature" -> "temperature", "images.0" -> "images", "offsets.2" -> "offsets"
function fieldName(field) {
  if (!field) return null;
  const parts = String(field).split(/[.[\]]+/).filter(
    (p) => p && !/^\d+$/.test(p) && !["body", "query", "path", "form", "header"].includes(p));
  return parts.length ? parts[parts.length - 1] : null;
}

export function clearErrors(section) {
  for (const node of $$(".field-error, .section-error", section)) node.textContent = "";
  for (const node of $$("[aria-invalid]", section)) node.removeAttribute("aria-invalid");
}

export function showError(section, error) {
  const field = fieldName(error.field);
  const slot = field ? $(`[data-error-for="${CSS.escape(field)}"]`, section) : null;
  const control = field ? $(`[data-field="${CSS.escape(field)}"]`, section) : null;
  const general = $(".section-error", section);
  if (control) control.setAttribute("aria-invalid", "true");
  if (slot) {
    // "temperature: Input should be greater than 0" next to the temperature field: the name once
    const prefix = `${field}: `;
    slot.textContent = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  } else if (general) {
    general.textContent = field ? `${field}: ${error.message}` : error.message;
  }
  if (error.status === 401 && general) general.textContent = "This server needs an API key: enter it above.";
}

/** `task` wrapped so that its section's errors are cleared first and any failure is shown in it. */
export function guard(section, task) {
  return async (...args) => {
    clearErrors(section);
    try {
      await task(...args);
    } catch (error) {
      if (!(error instanceof ApiError)) {
        console.warn(error); // a bug of the page; the person sees one line
        error = new ApiError(0, String(error.message || error), null);
      }
      showError(section, error);
    }
  };
}
