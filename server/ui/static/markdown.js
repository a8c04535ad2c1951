// Model text (answers, reasoning) as Markdown, safely. markdown-it renders it with raw HTML off, so a tag the model
// wrote stays text; DOMPurify then keeps only the elements Markdown makes (no style, no images, links to http(s)
// and mailto only) and hands back a DocumentFragment, so no HTML string ever reaches the live page. Math
// ($...$, $$...$$, \(...\), \[...\]) is left as text: no renderer, and no emphasis or escapes inside it.
"use strict";
window.treedistillMarkdown = (function () {
  const ALLOWED_TAGS = ["p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre",
    "code", "em", "strong", "s", "table", "thead", "tbody", "tr", "th", "td", "a"];
  const ALLOWED_ATTR = ["href", "title", "start"];
  const ALLOWED_URI_REGEXP = /^(?:https?:|mailto:)/i;
  const MATH_FENCES = [["$$", "$$"], ["\\[", "\\]"], ["\\(", "\\)"], ["$", "$"]];
  const md = window.markdownit({ html: false, linkify: false, typographer: false });

  // A math span becomes one text token, so the renderer escapes it and nothing inside it is parsed.
  md.inline.ruler.before("escape", "math_as_text", (state, silent) => {
    const src = state.src, start = state.pos;
    for (const [open, close] of MATH_FENCES) {
      if (!src.startsWith(open, start)) continue;
      const end = src.indexOf(close, start + open.length);
      if (end <= start + open.length || end > state.posMax - close.length) return false;
      if (!silent) state.push("text", "", 0).content = src.slice(start, end + close.length);
      state.pos = end + close.length;
      return true;
    }
    return false;
  });

  // Links open outside the app (it may sit in a host's sandboxed frame), without telling the target where from.
  window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });

  return function renderMarkdown(text) {
    return window.DOMPurify.sanitize(md.render(String(text || "")), { ALLOWED_TAGS, ALLOWED_ATTR,
      ALLOWED_URI_REGEXP, RETURN_DOM_FRAGMENT: true });
  };
})();
