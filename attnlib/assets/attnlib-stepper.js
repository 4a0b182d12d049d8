/* attnlib shape stepper: the behaviour of every stepper output made by attnlib.stepper.

   The markup (a div.attnlib-stepper holding the traces as a JSON script) comes from Python. This file is
   used two ways:
   - on the book's site it is one shared file, loaded by every page: it starts every stepper on the page;
   - in Jupyter and Colab outputs (no shared file to load) attnlib inlines it, wrapped in a function, and
     calls attnlibStepper on the output's own root element.
   Starting a root twice does nothing (data-ready). Nothing is assigned to global objects: the only global
   name is attnlibStepper, and only when this file is loaded on its own. */

function attnlibStepper(root) {
  if (!root || root.getAttribute("data-ready") === "1") { return; }
  if (!root.querySelector('script[type="application/json"]')) { return; }
  root.setAttribute("data-ready", "1");
  var D = JSON.parse(root.querySelector('script[type="application/json"]').textContent);
  var S = D.s;
  function str(i) { return i ? S[i] : null; }
  function esc(t) {
    return String(t).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function part(role) { return root.querySelector('[data-role="' + role + '"]'); }
  var sel = {}, step = 0;
  D.keys.forEach(function (k) { sel[k] = D.init[k]; });
  function entry() {
    return D.settings[D.keys.map(function (k) { return sel[k]; }).join("|")];
  }
  function expand(t) {
    if (t.x) { return t.x; }
    var steps = [];
    t.st.forEach(function (c) {
      var tp = D.tp[c[0]];
      steps.push({op: str(tp[0]), module: str(tp[1]), name: str(tp[2]), label: str(tp[3]), symbolic: str(tp[4]),
        source: str(tp[5]), where: str(tp[6]), comment: str(tp[7]), from: c[1], outputs: c[3], osyms: c[4],
        mismatch: str(c[5]), inputs: c[2].map(function (r) {
          if (r === -1) { return {who: "x", shape: t.i, syms: t.is}; }
          if (typeof r[0] === "number") {
            return {who: "output of step " + (r[0] + 1), shape: steps[r[0]].outputs[r[1]], syms: steps[r[0]].osyms[r[1]]};
          }
          return {who: str(r[1]) || "tensor", shape: r[0], syms: []};
        })});
    });
    t.x = steps;
    return steps;
  }
  function trace() {
    var e = entry();
    if (!e || e.t === undefined) { return null; }
    var t = D.traces[e.t];
    return {m: t.m, i: t.i, is: t.is, o: t.o, u: t.u, st: expand(t)};
  }
  function meaning(sym) { return D.legend[sym] ? sym + ": " + D.legend[sym] : sym; }
  function shapeText(shape, syms) {
    var p = shape.map(function (n, a) {
      var s = syms && syms[a] ? str(syms[a]) : null;
      return (s === null || s === String(n)) ? String(n) : s + "=" + n;
    });
    return "(" + p.join(", ") + (p.length === 1 ? ",)" : ")");
  }
  function axes(shape, syms, inferred) {
    if (!syms || !syms.some(function (x) { return x; })) { return ""; }
    return '<span class="ats-axes">' + shape.map(function (n, a) {
      var s = syms && syms[a] ? str(syms[a]) : null;
      var cls = "ats-axis" + (inferred && s ? " ats-inferred" : "");
      var title = s ? meaning(s) + (inferred ? " (inferred from the sizes)" : "") : "axis " + a;
      return '<span class="' + cls + '" title="' + esc(title) + '"><b>' + esc(s === null ? "\u00b7" : s) +
        "</b><i>" + n + "</i></span>";
    }).join("") + "</span>";
  }
  function eqRef(label) {
    if (!label) { return '<span class="ats-muted">no equation label</span>'; }
    // a labelled equation on this page (Sphinx id "equation-<label>", possibly normalised) becomes a link
    var target = document.getElementById("equation-" + label) ||
      document.getElementById("equation-" + label.toLowerCase().replace(/[^a-z0-9]+/g, "-"));
    var inner = "eq. " + esc(label);
    return target ? '<a class="ats-eq" href="#' + esc(target.id) + '">' + inner + "</a>"
                  : '<span class="ats-eq">' + inner + "</span>";
  }
  function outSyms(t) {
    var last = t.st[t.st.length - 1];
    return last && last.outputs[0].join(",") === t.o.join(",") ? last.osyms[0] : null;
  }
  function stepName(s) { return s.name || s.label || s.op; }
  function render() {
    var e = entry(), t = trace(), view = part("view"), list = part("list");
    D.keys.forEach(function (k) { part("sel-" + k).value = String(sel[k]); });
    if (!t) {
      var msg = e && e.e ? e.e : "this combination was not traced";
      view.innerHTML = '<div class="ats-error">This setting cannot be built:</div><pre>' + esc(msg) + "</pre>";
      list.innerHTML = ""; part("summary").innerHTML = "";
      part("pos").textContent = "-"; part("range").disabled = true;
      part("prev").disabled = true; part("next").disabled = true;
      return;
    }
    var n = t.st.length;
    if (n === 0) { view.textContent = "no tensor operation was recorded"; list.innerHTML = ""; return; }
    step = Math.max(0, Math.min(step, n - 1));
    var st = t.st[step];
    part("summary").innerHTML = "<code>" + esc(str(t.m)) + "</code>: input " + esc(shapeText(t.i, t.is)) +
      " \u2192 output " + esc(shapeText(t.o, outSyms(t))) + ", " + n + " steps" +
      (t.u ? ' <span class="ats-muted">(' + t.u + " without an equation label)</span>" : "");
    var r = part("range"); r.disabled = false; r.max = String(n - 1); r.value = String(step);
    part("pos").textContent = "step " + (step + 1) + " / " + n;
    part("prev").disabled = step === 0; part("next").disabled = step === n - 1;
    var name = stepName(st);
    var h = '<div class="ats-head">' + (step + 1) + ". " + esc(name) + " &nbsp;" + eqRef(st.label) + "</div>";
    h += "<div>operation <code>" + esc(st.op) + "</code>" + (st.module ? " in <code>" + esc(st.module) + "</code>" : "") +
      (st.where ? ' <span class="ats-muted">at ' + esc(st.where) + "</span>" : "") + "</div>";
    if (st.source) { h += "<pre>" + esc(st.source) + (st.comment ? "  " + esc(st.comment) : "") + "</pre>"; }
    h += "<div>inputs:<ul>" + st.inputs.map(function (inp) {
      return "<li>" + esc(inp.who) + " " + axes(inp.shape, inp.syms, false) + " <code>" +
        esc(shapeText(inp.shape, inp.syms)) + "</code></li>";
    }).join("") + "</ul></div>";
    h += "<div>output" + (st.outputs.length > 1 ? "s" : "") + ": " + st.outputs.map(function (o, k) {
      return axes(o, st.osyms[k], st.from === 2) + " <code>" + esc(shapeText(o, st.osyms[k])) + "</code>";
    }).join(" &nbsp; ") + "</div>";
    if (st.from === 1 && st.symbolic) {
      h += '<div class="ats-muted">symbolic shape from the source comment: <code>' + esc(st.symbolic) + "</code></div>";
    } else if (st.from === 2) {
      h += '<div class="ats-muted">axis names in italics are inferred from the sizes</div>';
    }
    if (st.mismatch) { h += '<div class="ats-warn">comment and real shape disagree: ' + esc(st.mismatch) + "</div>"; }
    view.innerHTML = h;
    list.innerHTML = t.st.map(function (s, i) {
      var named = s.name || s.label;
      return '<li data-i="' + i + '"' + (i === step ? ' class="ats-current"' : "") + ">" +
        (named ? esc(named) + " " : "") + (s.label ? '<span class="ats-muted">[' + esc(s.label) + "]</span> " : "") +
        "<code>" + esc(s.op) + "</code> \u2192 <code>" + esc(shapeText(s.outputs[0], s.osyms[0])) + "</code></li>";
    }).join("");
    var cur = list.querySelector("li.ats-current");
    if (cur && list.scrollHeight > list.clientHeight) {  // scroll the list only, never the page
      var lr = list.getBoundingClientRect(), cr = cur.getBoundingClientRect();
      if (cr.top < lr.top || cr.bottom > lr.bottom) { list.scrollTop += cr.top - lr.top - list.clientHeight / 2; }
    }
  }
  function go(i) { step = i; render(); }
  function choose(key, index) {
    var before = trace(), old = before ? before.st[step] : null;
    sel[key] = index;
    var t = trace();
    if (t && old) {  // keep the same operation in view when the settings change
      var best = -1;
      t.st.forEach(function (s, i) {
        if (s.op === old.op && s.label === old.label && s.source === old.source &&
            (best < 0 || Math.abs(i - step) < Math.abs(best - step))) { best = i; }
      });
      if (best >= 0) { step = best; }
    }
    render();
  }
  D.keys.forEach(function (k) {
    part("sel-" + k).addEventListener("change", function (ev) { choose(k, parseInt(ev.target.value, 10)); });
  });
  part("prev").addEventListener("click", function () { go(step - 1); });
  part("next").addEventListener("click", function () { go(step + 1); });
  part("range").addEventListener("input", function (ev) { go(parseInt(ev.target.value, 10)); });
  part("list").addEventListener("click", function (ev) {
    var li = ev.target.closest ? ev.target.closest("li[data-i]") : null;
    if (li) { go(parseInt(li.getAttribute("data-i"), 10)); }
  });
  root.addEventListener("keydown", function (ev) {
    if (ev.target.tagName === "SELECT" || ev.target.tagName === "INPUT") { return; }
    if (ev.key === "ArrowRight") { go(Math.min(step + 1, (trace() || {st: [0]}).st.length - 1)); ev.preventDefault(); }
    if (ev.key === "ArrowLeft") { go(Math.max(step - 1, 0)); ev.preventDefault(); }
  });
  root.attnlibStepper = {
    next: function () { part("next").click(); },
    prev: function () { part("prev").click(); },
    go: go,
    choose: choose,
    state: function () {
      var t = trace();
      return {step: step, steps: t ? t.st.length : 0, settings: JSON.parse(JSON.stringify(sel)),
              output: t ? shapeText(t.st[step].outputs[0], t.st[step].osyms[0]) : null,
              label: t ? t.st[step].label : null};
    }
  };
  render();
}

// Loaded as a file (a script element with a src), start every stepper once the page is parsed; inlined in
// an output, the output's own script starts its root.
if (document.currentScript && document.currentScript.src) {
  (function () {
    function startAll() {
      var roots = document.querySelectorAll("div.attnlib-stepper");
      for (var i = 0; i < roots.length; i++) { attnlibStepper(roots[i]); }
    }
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", startAll);
    } else {
      startAll();
    }
  })();
}
