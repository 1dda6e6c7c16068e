// Measures every slide of a reveal.js deck; see slide_audit.py (evaluated by Playwright).
(async () => {
  const config = Reveal.getConfig();
  if (window.MathJax) { await new Promise(done => MathJax.Hub.Queue(done)); }  // the first typesetting
  Reveal.configure({transition: 'none', backgroundTransition: 'none'});
  const words = text => (text.match(/[\p{L}\p{N}][\p{L}\p{N}'’\-_.\/]*/gu) || []).length;
  const lines = text => text.replace(/\s+$/, '').split('\n').filter((l, i, all) => all.length > 1 || l.trim()).length;
  const slides = Reveal.getSlides();
  const result = [];
  for (const slide of slides) {
    const where = Reveal.getIndices(slide);
    Reveal.slide(where.h, where.v, 10000);  // the last fragment: everything shown
    if (window.MathJax) { await new Promise(done => MathJax.Hub.Queue(done)); }
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
    const isTitle = !!slide.querySelector('.tfv-title-slide');
    const markdown = Array.from(slide.querySelectorAll('.jp-MarkdownCell, .jp-RenderedMarkdown'))
      .filter(el => !el.closest('aside.notes') && !el.parentElement.closest('.jp-MarkdownCell, .jp-RenderedMarkdown'));
    let titleWords = 0, bodyWords = 0, fencedLines = 0, tableRows = 0, titleSeen = false;
    for (const cell of markdown) {
      const copy = cell.cloneNode(true);
      copy.querySelectorAll('script, style, .MathJax_Preview, .MathJax, .MathJax_CHTML, .MathJax_Display, mjx-container, aside.notes').forEach(e => e.remove());
      copy.querySelectorAll('pre').forEach(pre => { fencedLines += lines(pre.textContent); pre.remove(); });
      copy.querySelectorAll('table').forEach(table => { tableRows += table.querySelectorAll('tr').length; table.remove(); });
      copy.querySelectorAll('h1, h2, h3, h4, h5, h6').forEach(h => {
        if (!titleSeen && !h.closest('.tfv-title-slide')) { titleWords += words(h.textContent); titleSeen = true; h.remove(); }
      });
      if (isTitle) continue;
      bodyWords += words(copy.textContent);
    }
    let codeLines = fencedLines;
    slide.querySelectorAll('.jp-CodeCell .jp-InputArea pre').forEach(pre => {
      if (!pre.closest('aside.notes')) codeLines += lines(pre.textContent);
    });
    let outputLines = tableRows;
    slide.querySelectorAll('.jp-OutputArea-output pre').forEach(pre => {
      if (!pre.closest('aside.notes')) outputLines += lines(pre.textContent);
    });
    slide.querySelectorAll('.jp-OutputArea-output table').forEach(table => {
      if (!table.closest('aside.notes, .jp-RenderedMarkdown')) outputLines += table.querySelectorAll('tr').length;
    });
    const overflow = [];
    if (slide.scrollHeight > config.height + 2) overflow.push(`content ${slide.scrollHeight}px tall > ${config.height}px`);
    if (slide.scrollWidth > config.width + 2) overflow.push(`content ${slide.scrollWidth}px wide > ${config.width}px`);
    const box = slide.getBoundingClientRect();
    const scale = box.width / slide.offsetWidth || 1;
    slide.querySelectorAll('img, svg, pre, table, .jp-OutputArea-output').forEach(el => {
      if (el.closest('aside.notes')) return;
      const r = el.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) return;
      const cut = r.bottom > box.top + config.height * scale + 2 || r.right > box.left + config.width * scale + 2;
      if (cut) overflow.push(`${el.tagName.toLowerCase()} ends outside the slide`);
      if (el.tagName === 'PRE' && el.scrollWidth > el.clientWidth + 2) overflow.push('a line of code or output is cut off');
    });
    const heading = slide.querySelector('h1, h2, h3, h4');
    result.push({
      h: where.h, v: where.v,
      title: (heading ? heading.textContent : slide.textContent).replace(/¶/g, '').replace(/\s+/g, ' ').trim().slice(0, 70),
      title_words: titleWords, words: bodyWords, code_lines: codeLines, output_lines: outputLines,
      overflow: Array.from(new Set(overflow)),
      notes: words((Reveal.getSlideNotes(slide) || '').replace(/<[^>]+>/g, ' ')),
      title_slide: isTitle,
    });
  }
  Reveal.slide(0, 0, 0);
  return result;
})
