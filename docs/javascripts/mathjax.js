// MathJax reads what pymdownx.arithmatex (generic mode) leaves: \( \) inline and \[ \] display, in .arithmatex only.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex"},
};
