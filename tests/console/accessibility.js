// Runs in the page (through Playwright, not as a page script): what an accessibility
// check finds on it. Returns a list of problems, empty when the page passes.
() => {
  const problems = [];
  const describe = (el) => el.outerHTML.slice(0, 120);

  // 1. Every form control has a label (label[for], a wrapping label, aria-label(ledby)).
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    if (el.type === "hidden") continue;
    let name = el.getAttribute("aria-label") || "";
    const by = el.getAttribute("aria-labelledby");
    if (by) name += by.split(/\s+/).map((id) => document.getElementById(id)?.textContent || "").join(" ");
    if (el.id) {
      for (const label of document.querySelectorAll(`label[for="${CSS.escape(el.id)}"]`)) name += label.textContent;
    }
    if (el.closest("label")) name += el.closest("label").textContent;
    if (el.tagName === "BUTTON") name += el.textContent;
    if (!name.trim()) problems.push(`unlabelled control: ${describe(el)}`);
  }

  // 2. Headings: one h1, first; no level skipped on the way down.
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")];
  const levels = headings.map((h) => Number(h.tagName[1]));
  if (levels.filter((l) => l === 1).length !== 1 || levels[0] !== 1) {
    problems.push(`headings must start with exactly one h1: ${levels.join(",")}`);
  }
  for (let i = 1; i < levels.length; i++) {
    if (levels[i] > levels[i - 1] + 1) {
      problems.push(`heading level skipped: h${levels[i - 1]} then h${levels[i]} (${headings[i].textContent.trim()})`);
    }
  }

  // 3. Colour contrast of every piece of text against its effective background (WCAG AA).
  const rgba = (text) => {
    const m = text.match(/rgba?\(([^)]+)\)/);
    if (!m) return [0, 0, 0, 0];
    const parts = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return [parts[0], parts[1], parts[2], parts.length > 3 ? parts[3] : 1];
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) return colour;
    }
    return [255, 255, 255, 1];
  };
  const luminance = ([r, g, b]) => {
    const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  let checked = 0;
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || seen.has(el)) continue;
    if (el.closest("svg, title, style, script")) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || style.display === "none") continue;
    const fg = rgba(style.color);
    const bg = background(el);
    const l1 = luminance(fg), l2 = luminance(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(style.fontSize);
    const bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    checked++;
    if (ratio < needed) {
      problems.push(`contrast ${ratio.toFixed(2)} < ${needed} for "${node.textContent.trim().slice(0, 40)}" (${style.color} on rgba(${bg.join(",")}))`);
    }
  }
  if (checked === 0) problems.push("no text was checked");
  return problems;
}
