/*
 * Loaded on pages with widgets, before require.js and the widget manager (see nb_ipywidgets_js in _config.yml);
 * `make vendor` copies it to _vendor/widgets/compat.js. Two fixes for @jupyter-widgets/html-manager 1.0.x
 * served from the book itself:
 *
 * 1. It fetches its fonts (Font Awesome) and lazily loaded chunks from the folder of its require.js module,
 *    "@jupyter-widgets/html-manager/dist/libembed-amd", which require.js resolves against the page's folder
 *    (a 404 here). Map that module path to this script's folder with a require.js configuration, which
 *    require.js picks up from a global `require` object defined before it loads.
 * 2. It typesets widget labels with the MathJax 2 API, MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]);
 *    the book loads MathJax 3, which has no Hub, so every widget would throw. Provide a Hub.Queue that
 *    typesets the element with MathJax 3 once MathJax is ready.
 */
(function () {
  "use strict";
  var here = new URL(".", document.currentScript.src).href.replace(/\/$/, "");
  if (window.require === undefined) {
    window.require = { paths: { "@jupyter-widgets/html-manager/dist": here } };
  }

  var Hub = {
    Queue: function (job) {
      var element = Array.isArray(job) ? job[2] : undefined;
      var mathjax = window.MathJax;
      // Before MathJax 3 has started, its first typesetting pass over the page covers the element.
      if (mathjax && mathjax.startup && mathjax.startup.promise && mathjax.typesetPromise) {
        mathjax.startup.promise
          .then(function () { return mathjax.typesetPromise(element ? [element] : undefined); })
          .catch(function (err) { console.warn("MathJax could not typeset a widget label:", err); });
      }
    },
  };

  // Sphinx defines window.MathJax as MathJax 3's configuration before this script runs and loads MathJax
  // itself with `defer`, i.e. later. MathJax replaces the configuration object by its own global when it
  // starts, so give both objects a Hub: the configuration now, the real MathJax in startup.ready().
  var mathjax = (window.MathJax = window.MathJax || {});
  mathjax.Hub = mathjax.Hub || Hub;
  if (!mathjax.version) {
    var startup = (mathjax.startup = mathjax.startup || {});
    var ready = startup.ready;
    startup.ready = function () {
      if (ready) {
        ready();
      } else {
        window.MathJax.startup.defaultReady();
      }
      window.MathJax.Hub = window.MathJax.Hub || Hub;
    };
  }
})();
