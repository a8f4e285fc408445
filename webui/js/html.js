// Safe HTML building: `html` is a tagged template that escapes every interpolated value
// unless it is itself the result of `html` (or `raw`), so data from the cluster (task
// names, labels, file names) can never become markup.

class Safe {
  constructor(text) { this.text = text; }
  toString() { return this.text; }
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

function render(value) {
  if (value instanceof Safe) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escape(value);
}

export function html(strings, ...values) {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
  return new Safe(out);
}

// Markup that is already safe (a constant of our own).
export function raw(text) { return new Safe(text); }

// Replaces an element's content only when it changed, so a poll that brings nothing new
// keeps the reader's text selection and the browser's layout untouched.
export function setHTML(element, content) {
  const text = render(content);
  if (element.__html !== text) {
    element.innerHTML = text;
    element.__html = text;
  }
}

// A link into the UI's hash router.
export function link(path, label, title) {
  return html`<a href="#${path}" title="${title || ''}">${label}</a>`;
}

// Path segments for hash routes: ids may hold any character but `/`.
export function seg(text) { return encodeURIComponent(text); }
