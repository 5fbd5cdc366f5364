// DOM helpers. Every piece of text goes into the page through text nodes, textContent or
// setAttribute (never innerHTML), so names and metadata holding markup render as text.

/** Builds an element; string children become text nodes; `on…` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
}

export function append(el, children) {
  for (const child of [children].flat(Number.POSITIVE_INFINITY)) {
    if (child === null || child === undefined || child === false || child === "") continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

let counter = 0;
/** A fresh id for aria-labelledby / aria-describedby pairs. */
export const uid = (prefix = "id") => `${prefix}-${++counter}`;

/** Text only a screen reader reads. */
export const srOnly = (...children) => h("span", { class: "sr-only" }, ...children);

const toastBox = () => document.getElementById("toast");
let toastTimer = null;

/** A short status message, read out by screen readers (role=status); errors stay longer. */
export function toast(text, { error = false } = {}) {
  const box = toastBox();
  if (!box) return;
  box.textContent = text;
  box.classList.toggle("error-toast", error);
  box.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("show"), error ? 6000 : 3000);
}

/** A section with a heading; `level` 2 by default. */
export function section(title, ...children) {
  const id = uid("section");
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...children);
}

/** A definition list from [term, value] pairs; null pairs are skipped. */
export function dl(pairs) {
  return h(
    "dl",
    { class: "dl" },
    pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}
