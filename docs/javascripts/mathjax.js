// Formulas: pymdownx.arithmatex wraps each one, as TeX between \( \) (inline) or
// \[ \] (display), in an element of class "arithmatex". MathJax typesets those
// elements only, and is loaded only on pages that have one (it is 2 MB); it is
// published with the site (docs/_hooks/mathjax.py), next to this file's folder.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]]},
  options: {ignoreHtmlClass: ".*", processHtmlClass: "arithmatex"},
  svg: {fontCache: "global"},
};

const mathjaxSource = new URL("../assets/mathjax/tex-svg.js", document.currentScript.src);

function loadMathJax() {
  if (!document.querySelector(".arithmatex")) {
    return;
  }
  const script = document.createElement("script");
  script.src = mathjaxSource.href;
  script.async = true;
  document.head.appendChild(script);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", loadMathJax);
} else {
  loadMathJax();
}
