// Small DOM helpers: elements, labelled fields, forms, and problem+json errors
// shown next to the control that caused them. No inline style anywhere: the
// page's policy (style-src 'self') refuses it; visibility uses `hidden` and classes.

import { Problem } from "./api.js";

let counter = 0;

/** A new element: `h("button", {class: "x", onclick: fn}, "text", child)`. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "value") element.value = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function uid(prefix = "c") {
  counter += 1;
  return `${prefix}${counter}`;
}

/**
 * A labelled control with its own error slot (`aria-describedby`).
 * `spec`: {name, type?, required?, value?, options? (for a select), hint?, autocomplete?, ...}
 */
export function field(label, spec) {
  const id = uid("f");
  const { options, hint, tag, ...attrs } = spec;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  let control;
  if (options) {
    control = h(
      "select",
      { id, name: attrs.name, "aria-describedby": describedBy },
      options.map((option) => {
        const [value, text] = Array.isArray(option) ? option : [option, option];
        return h("option", { value, selected: value === attrs.value }, text);
      }),
    );
  } else {
    control = h(tag || "input", { id, type: tag ? null : attrs.type || "text", ...attrs, "aria-describedby": describedBy });
  }
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    control,
    h("p", { class: "field-error", id: errorId, hidden: true }),
  );
}

/** A form: fields, a submit button, a form-level error slot; `onsubmit(values, form)` may throw `Problem`. */
export function form(label, children, submitText, onsubmit, extra = {}) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: extra.buttonClass || "primary" }, submitText);
  const element = h(
    "form",
    { class: extra.class || "stack", "aria-label": label, novalidate: extra.novalidate ? true : null },
    children,
    h("div", { class: "actions" }, button),
    error,
  );
  element.addEventListener("submit", (event) => {
    event.preventDefault();
    run(element, () => onsubmit(values(element), element));
  });
  return element;
}

/** The form's named values (checkbox groups become arrays). */
export function values(formElement) {
  const data = {};
  for (const control of formElement.elements) {
    if (!control.name) continue;
    if (control.type === "checkbox") {
      data[control.name] = data[control.name] || [];
      if (control.checked) data[control.name].push(control.value);
    } else {
      data[control.name] = control.value;
    }
  }
  return data;
}

function clearErrors(target) {
  const scope = target.tagName === "FORM" ? target : target.parentElement;
  if (!scope) return;
  for (const slot of scope.querySelectorAll(".field-error, .form-error, .inline-error")) {
    slot.hidden = true;
    slot.textContent = "";
  }
  for (const control of scope.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

function fieldName(loc) {
  const names = (Array.isArray(loc) ? loc : []).filter((part) => typeof part === "string");
  return names.length ? names[names.length - 1] : null;
}

/** Show `problem` next to `target` (a form: per field from `errors[].loc`, else at the form). */
export function showProblem(target, problem) {
  const message = problem instanceof Problem ? problem.message : String(problem && problem.message ? problem.message : problem);
  if (target.tagName === "FORM") {
    const unplaced = [];
    for (const error of problem instanceof Problem ? problem.errors : []) {
      const name = fieldName(error.loc);
      const control = name ? target.elements.namedItem(name) : null;
      const element = control && control.length !== undefined && !control.tagName ? control[0] : control;
      const slotId = element && (element.getAttribute("aria-describedby") || "").split(" ").pop();
      const slot = slotId ? document.getElementById(slotId) : null;
      if (slot) {
        slot.textContent = error.msg;
        slot.hidden = false;
        element.setAttribute("aria-invalid", "true");
      } else {
        unplaced.push(name ? `${name}: ${error.msg}` : error.msg);
      }
    }
    const slot = target.querySelector(".form-error");
    const placed = problem instanceof Problem && problem.errors.length > unplaced.length;
    const text = [placed ? "Please correct the fields marked above." : message, ...unplaced].join(" ");
    slot.textContent = text;
    slot.hidden = false;
    return;
  }
  // A button (or other control): the message goes right after it.
  let slot = target.nextElementSibling;
  if (!slot || !slot.classList.contains("inline-error")) {
    slot = h("span", { class: "inline-error", role: "alert" });
    target.after(slot);
  }
  slot.textContent = message;
  slot.hidden = false;
}

/**
 * Run `action()` for `target` (a form or a button): the control is disabled and
 * marked busy meanwhile, and a failure is shown next to it.
 */
export async function run(target, action) {
  clearErrors(target);
  const buttons = target.tagName === "FORM" ? [...target.querySelectorAll("button")] : [target];
  for (const button of buttons) button.disabled = true;
  const slow = window.setTimeout(() => target.setAttribute("aria-busy", "true"), 300);
  try {
    return await action();
  } catch (error) {
    if (target.isConnected) showProblem(target, error);
    else console.warn(error);
    return undefined;
  } finally {
    window.clearTimeout(slow);
    target.removeAttribute("aria-busy");
    for (const button of buttons) button.disabled = false;
  }
}

/** A button running `action` with errors shown next to it. */
export function action(text, onclick, attrs = {}) {
  const button = h("button", { type: "button", ...attrs }, text);
  button.addEventListener("click", () => run(button, () => onclick(button)));
  return button;
}

/**
 * A button for a destructive action: the first press arms it ("Confirm …"),
 * the second (within five seconds) runs `onclick`; Escape or the timeout disarms it.
 */
export function confirmAction(text, confirmText, onclick, attrs = {}) {
  const label = attrs["aria-label"] || text;
  const button = h("button", { type: "button", ...attrs }, text);
  let timer = null;
  const disarm = () => {
    window.clearTimeout(timer);
    timer = null;
    delete button.dataset.armed;
    button.textContent = text;
    button.setAttribute("aria-label", label);
  };
  button.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && button.dataset.armed) disarm();
  });
  button.addEventListener("click", () => {
    if (!button.dataset.armed) {
      button.dataset.armed = "true";
      button.textContent = confirmText;
      button.setAttribute("aria-label", `${confirmText}: ${label}`);
      timer = window.setTimeout(disarm, 5000);
      return;
    }
    disarm();
    run(button, () => onclick(button));
  });
  return button;
}

/** A polite status line. */
export function note(text, extra = {}) {
  return h("p", { class: "note", role: "status", ...extra }, text);
}

/** A readable local time for an ISO timestamp. */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
