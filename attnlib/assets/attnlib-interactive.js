/* attnlib interactives (attnlib.interactive): one function, attnlibInteractive(root), that reads the JSON
   data inside `root` and builds the interactive named by data.kind. Plain JavaScript, no module, no request:
   it works from file://, in Jupyter, in Colab and on the static site. Every element is found inside `root`
   by its data-role, so several outputs on one page never collide. Displayed numbers carry their full value
   in a data-v attribute (the browser tests read it). */
function attnlibInteractive(root) {
  "use strict";
  if (!root || root.getAttribute("data-started")) { return; }
  root.setAttribute("data-started", "1");
  var data = JSON.parse(root.querySelector('script[type="application/json"]').textContent);
  var body = root.querySelector('[data-role="body"]');
  body.textContent = "";
  var NS = "http://www.w3.org/2000/svg";

  // ------------------------------------------------------------------------------------- helpers
  function el(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function sv(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function svg(parent, w, h, label) {
    return sv("svg", {viewBox: "0 0 " + w + " " + h, width: w, height: h, role: "img", "aria-label": label}, parent);
  }
  function clear(e) { while (e.firstChild) { e.removeChild(e.firstChild); } }
  function fmt(v, d) {
    var s = Number(v).toFixed(d === undefined ? 3 : d);
    return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
  }
  function num(parent, role, v, d) {  // a displayed number with its full value in data-v
    return el("span", {"data-role": role, "data-v": String(v)}, parent, fmt(v, d));
  }
  function setNum(e, v, d) { e.setAttribute("data-v", String(v)); e.textContent = fmt(v, d); }
  function slider(parent, label, role, min, max, step, value) {
    var l = el("label", {}, parent, label + " ");
    var input = el("input", {type: "range", min: min, max: max, step: step, value: value, "data-role": role,
                             "aria-label": label}, l);
    var out = el("span", {"class": "ati-read", "data-role": role + "-value"}, l);
    return {input: input, out: out};
  }
  function linear(d0, d1, r0, r1) {
    return function (v) { return r0 + (v - d0) * (r1 - r0) / ((d1 - d0) || 1); };
  }
  function ticks(lo, hi, n) {
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n || 1)));
    var err = (hi - lo) / n / step;
    step *= err >= 5 ? 10 : err >= 2 ? 5 : err >= 1.5 ? 2 : 1;
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) { out.push(+t.toFixed(10)); }
    return out;
  }
  // a y axis with ticks and label, an x axis line with label; box = {x, y, w, h}
  function axes(g, box, ylo, yhi, ylabel, xlabel, yfmt) {
    var ys = linear(ylo, yhi, box.y + box.h, box.y);
    ticks(ylo, yhi, 4).forEach(function (t) {
      sv("line", {x1: box.x, x2: box.x + box.w, y1: ys(t), y2: ys(t), "class": "ati-grid"}, g);
      sv("text", {x: box.x - 4, y: ys(t) + 3.5, "text-anchor": "end"}, g, yfmt ? yfmt(t) : String(t));
    });
    sv("path", {d: "M" + box.x + "," + box.y + "V" + (box.y + box.h) + "H" + (box.x + box.w), "class": "ati-axis"}, g);
    sv("text", {x: box.x - 34, y: box.y + box.h / 2, "text-anchor": "middle",
                transform: "rotate(-90 " + (box.x - 34) + " " + (box.y + box.h / 2) + ")"}, g, ylabel);
    sv("text", {x: box.x + box.w / 2, y: box.y + box.h + 28, "text-anchor": "middle"}, g, xlabel);
    return ys;
  }
  function colour(t) {  // the book's colormap, t in [0, 1]
    var lut = data.cmap, i = Math.round(Math.max(0, Math.min(1, t)) * (lut.length - 1));
    return isFinite(i) ? lut[i] : lut[0];
  }
  function colorbar(g, x, y, w, h, lo, hi, label) {
    for (var i = 0; i < 64; i++) {
      sv("rect", {x: x, y: y + h - (i + 1) * h / 64, width: w, height: h / 64 + 0.5, fill: colour((i + 0.5) / 64)}, g);
    }
    sv("rect", {x: x, y: y, width: w, height: h, "class": "ati-axis"}, g);
    var ys = linear(lo, hi, y + h, y);
    ticks(lo, hi, 4).forEach(function (t) {
      sv("line", {x1: x + w, x2: x + w + 3, y1: ys(t), y2: ys(t), "class": "ati-axis"}, g);
      sv("text", {x: x + w + 5, y: ys(t) + 3.5}, g, fmt(t, 2));
    });
    sv("text", {x: x + w + 42, y: y + h / 2, "text-anchor": "middle",
                transform: "rotate(-90 " + (x + w + 42) + " " + (y + h / 2) + ")"}, g, label);
  }
  function scene(parent, png, caption) {
    var f = el("figure", {}, parent);
    var img = el("img", {"class": "ati-scene", src: png, alt: caption, "data-role": "scene-image"}, f);
    var c = el("figcaption", {"data-role": "scene-caption"}, f, caption);
    return {img: img, caption: c};
  }
  function sceneText(s) { return "test scene " + s.index + ": " + s["class"]; }

  // ----------------------------------------------------------------------------------------- ECA
  function eca() {
    var C = data.C, k = data.k, p = (k - 1) / 2, w = data.weight, y0 = data.y, R = data.nudge_range;
    var st = data.style, state = {c: data.channel, d: 0};
    function gates(y) {  // ω_c = σ(Σ_j w_j y_{c+j-p}), zero padding (eq. eca-excite)
      var out = [];
      for (var c = 0; c < C; c++) {
        var s = 0;
        for (var j = 0; j < k; j++) { var i = c + j - p; if (i >= 0 && i < C) { s += w[j] * y[i]; } }
        out.push(1 / (1 + Math.exp(-s)));
      }
      return out;
    }
    var g0 = gates(y0);
    var ctl = el("div", {"class": "ati-controls"}, body);
    var ch = slider(ctl, "channel c", "channel", 0, C - 1, 1, state.c);
    var nu = slider(ctl, "nudge \u0394y_c", "nudge", -R, R, R / 200, 0);
    var reset = el("button", {type: "button", "data-role": "reset"}, ctl, "reset nudge");
    var info = el("div", {"class": "ati-read"}, body);
    el("span", {}, info, "kernel w (k = " + k + "): [" + w.map(function (v) { return fmt(v, 3); }).join(", ") + "]   ");
    el("span", {}, info, "y_c = ");
    var yc = num(info, "yc", 0);
    el("span", {}, info, " (scene's own: ");
    var yc0 = num(info, "yc0", 0);
    el("span", {}, info, ")");
    var row = el("div", {"class": "ati-row"}, body);
    var charts = el("div", {}, row);
    scene(row, data.scene.png, sceneText(data.scene));
    var W = 700, top = svg(charts, W, 170, "descriptor y per channel"), bot = svg(charts, W, 170, "gate per channel");
    var changed = el("div", {"class": "ati-read", "data-role": "changed"}, body);
    var table = el("table", {"data-role": "band"}, body);
    var box = {x: 50, y: 8, w: W - 60, h: 120}, bw = box.w / C;
    var xs = function (c) { return box.x + c * bw; };
    var yrange = [0, 0];
    function chooseRange() {
      var lo = Math.min.apply(null, y0), hi = Math.max.apply(null, y0);
      lo = Math.min(lo, y0[state.c] - R, 0); hi = Math.max(hi, y0[state.c] + R, 0);
      yrange = [lo, hi];
    }
    function draw() {
      var y = y0.slice(); y[state.c] += state.d;
      var g = gates(y);
      clear(top); clear(bot);
      var ys = axes(top, box, yrange[0], yrange[1], "descriptor y_c", "channel c (drag a bar up or down)",
                    function (t) { return fmt(t, 1); });
      sv("rect", {x: xs(state.c - p), y: box.y, width: k * bw, height: box.h, fill: st.highlight[1], opacity: 0.12}, top);
      for (var c = 0; c < C; c++) {
        var v = y[c], y1 = ys(Math.max(v, 0)), y2 = ys(Math.min(v, 0));
        sv("rect", {x: xs(c) + 0.1 * bw, y: y1, width: 0.8 * bw, height: Math.max(y2 - y1, 0.5),
                    fill: c === state.c ? st.highlight[0] : st.bar}, top);
      }
      sv("line", {x1: xs(state.c), x2: xs(state.c + 1), y1: ys(y0[state.c]), y2: ys(y0[state.c]),
                  stroke: "currentColor", "stroke-width": 2, "stroke-dasharray": "2,1"}, top);
      var gs = axes(bot, box, 0, 1, "gate \u03c9_c", "channel c  (green: gate changed; black tick: before the nudge)",
                    function (t) { return fmt(t, 1); });
      var moved = [], outside = 0;
      for (c = 0; c < C; c++) {
        var dg = g[c] - g0[c];
        if (dg !== 0) { moved.push(c); }
        if (Math.abs(c - state.c) > p) { outside = Math.max(outside, Math.abs(dg)); }
        sv("rect", {x: xs(c) + 0.1 * bw, y: gs(g[c]), width: 0.8 * bw, height: box.y + box.h - gs(g[c]),
                    fill: dg !== 0 ? st.highlight[1] : st.bar}, bot);
        if (dg !== 0) {
          sv("line", {x1: xs(c), x2: xs(c + 1), y1: gs(g0[c]), y2: gs(g0[c]), stroke: "currentColor", "stroke-width": 1.5}, bot);
        }
      }
      ch.out.textContent = String(state.c);
      nu.out.textContent = (state.d >= 0 ? "+" : "") + fmt(state.d, 3);
      setNum(yc, y[state.c]); setNum(yc0, y0[state.c]);
      changed.setAttribute("data-channels", moved.join(","));
      changed.setAttribute("data-outside", String(outside));
      changed.textContent = (moved.length ? "gates that changed: channels " + moved.join(", ") + " (" + moved.length +
        " of " + C + "; the band c \u2212 " + p + " \u2026 c + " + p + ")" : "no gate changed (nudge is 0)") +
        "; largest |\u0394\u03c9| outside the band: " + fmt(outside, 6);
      clear(table);
      var hr = el("tr", {}, table);
      ["channel", "y (nudged)", "\u03c9 before", "\u03c9 after", "\u0394\u03c9"].forEach(function (t) { el("th", {}, hr, t); });
      for (c = Math.max(0, state.c - p - 1); c <= Math.min(C - 1, state.c + p + 1); c++) {
        var tr = el("tr", {"data-channel": c, "class": c === state.c ? "ati-cur" : Math.abs(c - state.c) <= p ? "ati-hl" : ""}, table);
        el("td", {}, tr, String(c));
        num(el("td", {}, tr), "y", y[c]); num(el("td", {}, tr), "gate-before", g0[c], 4);
        num(el("td", {}, tr), "gate", g[c], 4); num(el("td", {}, tr), "delta", g[c] - g0[c], 4);
      }
    }
    function setChannel(c) {
      state.c = Math.max(0, Math.min(C - 1, c)); state.d = 0; ch.input.value = state.c; nu.input.value = 0;
      chooseRange(); draw();
    }
    ch.input.addEventListener("input", function () { setChannel(+ch.input.value); });
    nu.input.addEventListener("input", function () { state.d = +nu.input.value; draw(); });
    reset.addEventListener("click", function () { state.d = 0; nu.input.value = 0; draw(); });
    // drag on the descriptor chart: press on a bar to pick its channel, move to set its value
    var dragging = false;
    function pointer(ev) {
      var r = top.getBoundingClientRect(), sx = W / r.width, sy = 170 / r.height;
      return {x: (ev.clientX - r.left) * sx, y: (ev.clientY - r.top) * sy};
    }
    function dragTo(ev) {
      var pt = pointer(ev), ys = linear(yrange[0], yrange[1], box.y + box.h, box.y);
      var v = yrange[0] + (box.y + box.h - pt.y) * (yrange[1] - yrange[0]) / box.h;
      state.d = Math.max(-R, Math.min(R, v - y0[state.c])); nu.input.value = state.d; draw(); return ys;
    }
    top.addEventListener("pointerdown", function (ev) {
      var c = Math.floor((pointer(ev).x - box.x) / bw);
      if (c < 0 || c >= C) { return; }
      if (c !== state.c) { setChannel(c); }
      dragging = true; if (top.setPointerCapture) { top.setPointerCapture(ev.pointerId); }
      dragTo(ev); ev.preventDefault();
    });
    top.addEventListener("pointermove", function (ev) { if (dragging) { dragTo(ev); } });
    top.addEventListener("pointerup", function () { dragging = false; });
    top.style.cursor = "ns-resize";
    chooseRange(); draw();
  }

  // -------------------------------------------------------------------- coordinate attention / DyCAConv
  function coord() {
    var H = data.H, Wd = data.W, st = data.style, dy = null;
    data.sources.forEach(function (s) { if (s.pi) { dy = s; } });
    var state = {src: 0, c: data.channel, pi0: dy ? dy.pi[0] : 0.5, norm: "none"};
    var ctl = el("div", {"class": "ati-controls"}, body);
    var l = el("label", {}, ctl, "g\u02b0, g\u02b7 of ");
    var sel = el("select", {"data-role": "source"}, l);
    data.sources.forEach(function (s, i) {
      el("option", {value: i}, sel, s.model === "coord" ? "the coordinate-attention model" : "the DyCAConv model");
    });
    var ch = slider(ctl, "channel c", "channel", 0, data.C - 1, 1, state.c);
    var pi = slider(ctl, "\u03c0\u2080 (weight of g\u02b7)", "pi", 0, 1, 0.01, state.pi0);
    var trained = el("button", {type: "button", "data-role": "trained"}, ctl,
                     "DyCAConv's own \u03c0 on this scene" + (dy ? " (\u03c0\u2080 = " + fmt(dy.pi[0], 3) + ")" : ""));
    var l2 = el("label", {}, ctl, "colour scale ");
    var norm = el("select", {"data-role": "norm"}, l2);
    el("option", {value: "none"}, norm, "raw values, 0 to 1 (compare the two maps)");
    el("option", {value: "minmax"}, norm, "min-max per map (shape within a map)");
    var read = el("div", {"class": "ati-read"}, body);
    el("span", {}, read, "\u03c0\u2080 = "); var p0 = num(read, "pi0", 0);
    el("span", {}, read, ", \u03c0\u2081 = "); var p1 = num(read, "pi1", 0);
    el("span", {}, read, ";  product range ["); var pmin = num(read, "plaid-min", 0);
    el("span", {}, read, ", "); var pmax = num(read, "plaid-max", 0);
    el("span", {}, read, "];  sum range ["); var smin = num(read, "sum-min", 0);
    el("span", {}, read, ", "); var smax = num(read, "sum-max", 0); el("span", {}, read, "]");
    var row = el("div", {"class": "ati-row"}, body);
    var cell = 12, strip = 10, gap = 4, mw = Wd * cell, mh = H * cell;
    var PW = 2 * (40 + strip + gap + mw) + 120, PH = 40 + strip + gap + mh + 40;
    var pic = svg(row, PW, PH, "the two gates of one channel");
    var fig = scene(row, data.scene.png, sceneText(data.scene));
    var hover = el("div", {"class": "ati-read", "data-role": "hover"}, body,
                   "point at a cell: its row gate, column gate, product and sum");
    function maps() {
      var s = data.sources[state.src], gh = s.g_h[state.c], gw = s.g_w[state.c], P = [], S = [];
      for (var i = 0; i < H; i++) {
        P.push([]); S.push([]);
        for (var j = 0; j < Wd; j++) {
          P[i].push(gh[i] * gw[j]);                                  // eq. coord-scale: g^h_i g^w_j
          S[i].push(state.pi0 * gw[j] + (1 - state.pi0) * gh[i]);    // eq. dycaconv-gate: π0 g^w_j + π1 g^h_i
        }
      }
      return {gh: gh, gw: gw, P: P, S: S};
    }
    function range(M) {
      var lo = Infinity, hi = -Infinity;
      M.forEach(function (r) { r.forEach(function (v) { lo = Math.min(lo, v); hi = Math.max(hi, v); }); });
      return [lo, hi];
    }
    function panel(x0, M, gh, gw, title, role, lohi) {
      var lo = state.norm === "none" ? 0 : lohi[0], hi = state.norm === "none" ? 1 : lohi[1];
      var t = function (v) { return (v - lo) / ((hi - lo) || 1); };
      var mx = x0 + 40 + strip + gap, my = 40 + strip + gap;
      sv("text", {x: mx + mw / 2, y: 14, "text-anchor": "middle", "font-weight": 600}, pic, title);
      sv("text", {x: mx + mw / 2, y: 30, "text-anchor": "middle"}, pic, "g\u02b7 (one value per column)");
      for (var j = 0; j < Wd; j++) {  // the column gate as a strip on top
        sv("rect", {x: mx + j * cell, y: 40, width: cell, height: strip, fill: colour(t(gw[j]))}, pic);
      }
      for (var i = 0; i < H; i++) {   // the row gate as a strip on the left
        sv("rect", {x: x0 + 40, y: my + i * cell, width: strip, height: cell, fill: colour(t(gh[i]))}, pic);
      }
      sv("text", {x: x0 + 30, y: my + mh / 2, "text-anchor": "middle",
                  transform: "rotate(-90 " + (x0 + 30) + " " + (my + mh / 2) + ")"}, pic, "row i (height); strip: g\u02b0");
      var g = sv("g", {"data-role": role}, pic);
      for (i = 0; i < H; i++) {
        for (j = 0; j < Wd; j++) {
          sv("rect", {x: mx + j * cell, y: my + i * cell, width: cell + 0.3, height: cell + 0.3,
                      fill: colour(t(M[i][j])), "data-i": i, "data-j": j, "data-v": String(M[i][j])}, g);
        }
      }
      sv("text", {x: mx + mw / 2, y: my + mh + 16, "text-anchor": "middle"}, pic, "column j (width)");
      return mx;
    }
    function draw() {
      var m = maps(), rp = range(m.P), rs = range(m.S);
      clear(pic);
      panel(0, m.P, m.gh, m.gw, "g\u02b0\u00b7g\u02b7 (coordinate attention)", "plaid", rp);
      panel(40 + strip + gap + mw, m.S, m.gh, m.gw, "\u03c0\u2080g\u02b7 + \u03c0\u2081g\u02b0 (DyCAConv)", "sum", rs);
      var label = state.norm === "none" ? "gate (raw values)" : "gate (min-max normalised to [0, 1])";
      colorbar(pic, 2 * (40 + strip + gap + mw) + 14, 40 + strip + gap, 12, mh, 0, 1, label);
      setNum(p0, state.pi0); setNum(p1, 1 - state.pi0);
      setNum(pmin, rp[0]); setNum(pmax, rp[1]); setNum(smin, rs[0]); setNum(smax, rs[1]);
      ch.out.textContent = String(state.c); pi.out.textContent = fmt(state.pi0, 2);
      fig.caption.textContent = sceneText(data.scene) + "; stage " + data.stage + ", " + H + " \u00d7 " + Wd;
    }
    pic.addEventListener("mousemove", function (ev) {
      var r = ev.target;
      if (!r.getAttribute || r.getAttribute("data-i") === null) { return; }
      var i = +r.getAttribute("data-i"), j = +r.getAttribute("data-j"), m = maps();
      hover.textContent = "row i = " + i + ", column j = " + j + ":  g\u02b0 = " + fmt(m.gh[i]) + ", g\u02b7 = " +
        fmt(m.gw[j]) + ",  product = " + fmt(m.P[i][j]) + ",  sum = " + fmt(m.S[i][j]);
    });
    sel.addEventListener("change", function () { state.src = +sel.value; draw(); });
    ch.input.addEventListener("input", function () { state.c = +ch.input.value; draw(); });
    pi.input.addEventListener("input", function () { state.pi0 = +pi.input.value; draw(); });
    norm.addEventListener("change", function () { state.norm = norm.value; draw(); });
    trained.addEventListener("click", function () {
      if (dy) { state.pi0 = dy.pi[0]; pi.input.value = state.pi0; draw(); }
    });
    if (!dy) { trained.disabled = true; }
    draw();
  }

  // ------------------------------------------------------------------------------------------ SK
  function sk() {
    var S = data.scales, st = data.style, M = data.kernels.length, state = {i: 0};
    for (var q = 0; q < S.length; q++) { if (Math.abs(S[q] - 1) < Math.abs(S[state.i] - 1)) { state.i = q; } }
    var ctl = el("div", {"class": "ati-controls"}, body);
    var sl = slider(ctl, "object scale", "scale", 0, S.length - 1, 1, state.i);
    var row = el("div", {"class": "ati-row"}, body);
    var W = 460, Hh = 250, pic = svg(row, W, Hh, "branch weight against scale");
    var fig = scene(row, data.pngs[state.i], "");
    var table = el("table", {"data-role": "weights"}, body);
    el("div", {"class": "ati-muted"}, body, "Each number is the mean, over " + data.n + " test scenes (the same " +
       "garments on the same backgrounds at every scale) and over the stage's channels, of SK's branch weight " +
       "a_m (a softmax across the " + M + " branches, so each row sums to 1). Kernels: " +
       data.kernels.map(function (k, m) { return k + "\u00d7" + k + (m ? " (dilated 3\u00d73)" : ""); }).join(", ") + ".");
    var box = {x: 60, y: 10, w: W - 170, h: Hh - 60};
    var lo = Infinity, hi = -Infinity;
    data.stages.forEach(function (s) { s.weights.forEach(function (w) { lo = Math.min(lo, w[M - 1]); hi = Math.max(hi, w[M - 1]); }); });
    lo = Math.floor(lo * 20 - 0.5) / 20; hi = Math.ceil(hi * 20 + 0.5) / 20;
    var xs = linear(S[0], S[S.length - 1], box.x, box.x + box.w);
    function draw() {
      clear(pic);
      var kl = data.kernels[M - 1];
      sv("rect", {x: xs(Math.max(data.train_range[0], S[0])), y: box.y, height: box.h,
                  width: xs(Math.min(data.train_range[1], S[S.length - 1])) - xs(Math.max(data.train_range[0], S[0])),
                  fill: "currentColor", opacity: 0.08}, pic);
      sv("text", {x: xs(data.train_range[0]) + 3, y: box.y + 12, opacity: 0.7}, pic, "training scales");
      var ys = axes(pic, box, lo, hi, "weight on the " + kl + "\u00d7" + kl + " branch",
                    "object scale (longest side = scale \u00d7 " + data.base_px + " px)", function (t) { return fmt(t, 2); });
      S.forEach(function (s) {
        sv("line", {x1: xs(s), x2: xs(s), y1: box.y + box.h, y2: box.y + box.h + 4, "class": "ati-axis"}, pic);
      });
      [S[0], 1, S[S.length - 1]].forEach(function (s) {
        sv("text", {x: xs(s), y: box.y + box.h + 15, "text-anchor": "middle"}, pic, fmt(s, 2));
      });
      data.stages.forEach(function (s, n) {
        var col = st.highlight[n % st.highlight.length];
        sv("polyline", {points: S.map(function (v, i) { return xs(v) + "," + ys(s.weights[i][M - 1]); }).join(" "),
                        fill: "none", stroke: col, "stroke-width": 2}, pic);
        S.forEach(function (v, i) {
          sv("circle", {cx: xs(v), cy: ys(s.weights[i][M - 1]), r: i === state.i ? 5 : 2.5, fill: col}, pic);
        });
        sv("text", {x: box.x + box.w + 10, y: box.y + 14 + 16 * n, fill: col, style: "fill:" + col}, pic,
           "stage " + s.stage + " (C = " + s.C + ")");
      });
      sv("line", {x1: xs(S[state.i]), x2: xs(S[state.i]), y1: box.y, y2: box.y + box.h, stroke: "currentColor",
                  "stroke-dasharray": "4,3"}, pic);
      clear(table);
      var hr = el("tr", {}, table);
      el("th", {}, hr, "stage");
      data.kernels.forEach(function (k) { el("th", {}, hr, "a (" + k + "\u00d7" + k + ")"); });
      el("th", {}, hr, "sum");
      data.stages.forEach(function (s) {
        var tr = el("tr", {"data-stage": s.stage}, table), w = s.weights[state.i], tot = 0;
        el("td", {}, tr, String(s.stage));
        w.forEach(function (v, m) { tot += v; num(el("td", {}, tr), "branch-" + m, v, 4); });
        num(el("td", {}, tr), "sum", tot, 4);
      });
      sl.out.textContent = fmt(S[state.i], 2) + "\u00d7 (" + Math.round(S[state.i] * data.base_px) + " px)";
      sl.out.setAttribute("data-v", String(S[state.i]));
      fig.img.src = data.pngs[state.i];
      fig.caption.textContent = "test scene " + data.scene_index + " at scale " + fmt(S[state.i], 2);
    }
    sl.input.addEventListener("input", function () { state.i = +sl.input.value; draw(); });
    draw();
  }

  // --------------------------------------------------------------------------- dynamic convolution
  function dyconv() {
    var K = data.K, st = data.style, rng = data.log10_tau_range;
    var state = {s: 0, lt: data.tau_trained ? Math.log10(data.tau_trained) : 0};
    var ctl = el("div", {"class": "ati-controls"}, body);
    var l = el("label", {}, ctl, "scene ");
    var sel = el("select", {"data-role": "scene"}, l);
    data.scenes.forEach(function (s, i) { el("option", {value: i}, sel, sceneText(s)); });
    var ts = slider(ctl, "temperature \u03c4 (log scale)", "tau", rng[0], rng[1], 0.01, state.lt);
    var trained = el("button", {type: "button", "data-role": "trained"}, ctl,
                     "trained \u03c4 = " + (data.tau_trained === null ? "?" : fmt(data.tau_trained, 2)));
    var row = el("div", {"class": "ati-row"}, body);
    var fig = scene(row, data.scenes[0].png, "");
    var charts = el("div", {"class": "ati-row"}, row);
    var pics = data.stages.map(function (s) { return svg(charts, 190, 200, "kernel attention, stage " + s); });
    var read = el("div", {"class": "ati-read", "data-role": "readout"}, body);
    function softmax(z, tau) {  // π = softmax(z / τ), the largest logit subtracted first (eq. dyconv-attention)
      var m = Math.max.apply(null, z), e = z.map(function (v) { return Math.exp((v - m) / tau); });
      var s = e.reduce(function (a, b) { return a + b; }, 0);
      return e.map(function (v) { return v / s; });
    }
    function entropy(p) { return p.reduce(function (a, v) { return v > 0 ? a - v * Math.log(v) : a; }, 0); }
    function draw() {
      var sc = data.scenes[state.s], tau = Math.pow(10, state.lt);
      clear(read);
      el("span", {}, read, "\u03c4 = "); num(read, "tau-now", tau, tau < 1 ? 3 : 2);
      el("span", {}, read, ";  uniform \u03c0 = 1/K = " + fmt(1 / K, 3) + ", its entropy ln K = " + fmt(Math.log(K), 3) + " nats");
      data.stages.forEach(function (stage, n) {
        var g = pics[n], z = sc.z[n], p = softmax(z, tau), H = entropy(p);
        clear(g);
        var box = {x: 44, y: 22, w: 136, h: 120}, bw = box.w / K;
        sv("text", {x: box.x + box.w / 2, y: 12, "text-anchor": "middle", "font-weight": 600}, g, "stage " + stage);
        var ys = axes(g, box, 0, 1, "\u03c0_k", "kernel k", function (t) { return fmt(t, 1); });
        sv("line", {x1: box.x, x2: box.x + box.w, y1: ys(1 / K), y2: ys(1 / K), stroke: "currentColor",
                    "stroke-dasharray": "3,3"}, g);
        var top = 0;
        p.forEach(function (v, k) { if (v > p[top]) { top = k; } });
        var bars = sv("g", {"data-role": "pi", "data-stage": stage}, g);
        p.forEach(function (v, k) {
          sv("rect", {x: box.x + (k + 0.15) * bw, y: ys(v), width: 0.7 * bw, height: box.y + box.h - ys(v),
                      fill: k === top ? st.highlight[0] : st.bar, "data-k": k, "data-v": String(v)}, bars);
          sv("text", {x: box.x + (k + 0.5) * bw, y: ys(v) - 3, "text-anchor": "middle"}, g, fmt(v, 2));
          sv("text", {x: box.x + (k + 0.5) * bw, y: box.y + box.h + 12, "text-anchor": "middle"}, g, String(k));
        });
        var t = sv("text", {x: box.x, y: box.y + box.h + 44}, g, "entropy ");
        var e = sv("tspan", {"data-role": "entropy", "data-stage": stage, "data-v": String(H)}, t, fmt(H, 3));
        sv("tspan", {}, t, " / " + fmt(Math.log(K), 3) + " nats");
        sv("text", {x: box.x, y: box.y + box.h + 58, opacity: 0.75}, g,
           "z = [" + z.map(function (v) { return fmt(v, 2); }).join(", ") + "]");
        return e;
      });
      ts.out.textContent = fmt(tau, tau < 1 ? 3 : 2);
      ts.out.setAttribute("data-v", String(tau));
      fig.img.src = sc.png;
      fig.caption.textContent = "test scene " + sc.index + ": " + sc["class"];
    }
    sel.addEventListener("change", function () { state.s = +sel.value; draw(); });
    ts.input.addEventListener("input", function () { state.lt = +ts.input.value; draw(); });
    trained.addEventListener("click", function () {
      if (data.tau_trained) { state.lt = Math.log10(data.tau_trained); ts.input.value = state.lt; draw(); }
    });
    draw();
  }

  var kinds = {eca: eca, coord: coord, sk: sk, dyconv: dyconv};
  try {
    kinds[data.kind]();
  } catch (err) {
    body.textContent = "This interactive failed to start: " + err;
    throw err;
  }
}
