// The live component of the book (attnlib/zoo/live.py): a zoo model computing in the page with
// onnxruntime-web (wasm, one thread). Copied into the site as live/live.js by book/_ext/site_assets.py.
// Book-wide overlay (attnlib/plotting.py): the map upsampled bilinearly (align_corners=False),
// min-max normalised per map, drawn in the book's colormap over the photo with opacity ALPHA.

const PANEL = 160;            // px of every image panel
const MIN_SIDE = 16;          // smaller uploads are refused
const ORT_DIR = 'vendor/onnxruntime-web/';

let shared = null;            // {ort, data, base}: loaded once per page
const sessions = new Map();   // model name -> Promise<InferenceSession>
let queue = Promise.resolve();  // onnxruntime-web runs one call of a session at a time

// onnxruntime-web's loader, its wasm binary (fetched here, in parallel, and handed over as wasmBinary),
// the component's data and the first model all start downloading at once
function loadShared(base) {
  if (!shared) {
    const get = (path, how) => fetch(new URL(path, base)).then(r => {
      if (!r.ok) { throw new Error(path + ': HTTP ' + r.status); }
      return r[how]();
    });
    shared = (async () => {
      const [ort, wasm, data] = await Promise.all([
        import(new URL(ORT_DIR + 'ort.wasm.min.mjs', base).href),
        get(ORT_DIR + 'ort-wasm-simd-threaded.wasm', 'arrayBuffer'),
        get('live/data.json', 'json')]);
      ort.env.wasm.wasmPaths = new URL(ORT_DIR, base).href;
      ort.env.wasm.wasmBinary = wasm;
      ort.env.wasm.numThreads = 1;
      ort.env.logLevel = 'error';
      data.lut = [];
      for (let i = 0; i < data.cmap.length; i += 6) {
        data.lut.push([0, 2, 4].map(o => parseInt(data.cmap.slice(i + o, i + o + 2), 16)));
      }
      return {ort, data, base};
    })();
  }
  return shared;
}

const graphs = new Map();     // model name -> Promise<Uint8Array> (the ONNX file)
function graph(base, name) {
  if (!graphs.has(name)) {
    graphs.set(name, fetch(new URL('live/models/' + encodeURIComponent(name) + '.onnx', base)).then(r => {
      if (!r.ok) { throw new Error(`live/models/${name}.onnx: HTTP ${r.status}`); }
      return r.arrayBuffer();
    }).then(b => new Uint8Array(b)));
  }
  return graphs.get(name);
}

function session(ctx, name) {
  if (!sessions.has(name)) {
    sessions.set(name, graph(ctx.base, name).then(bytes => ctx.ort.InferenceSession.create(bytes,
      {executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3})));
  }
  return sessions.get(name);
}

// image: Float32Array (3*h*w, RGB planes, values in [0, 1]) -> {name: {dims, data}}
async function infer(ctx, name, image, h, w) {
  const sess = await session(ctx, name);
  const run = queue.then(async () => {
    const input = new ctx.ort.Tensor('float32', image, [1, 3, h, w]);
    const res = await sess.run({image: input});
    const out = {};
    for (const k of sess.outputNames) { out[k] = {dims: res[k].dims.slice(), data: Float32Array.from(res[k].data)}; }
    return out;
  });
  queue = run.catch(() => {});
  return run;
}

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') { e.className = v; } else if (k.startsWith('on')) { e.addEventListener(k.slice(2), v); }
    else { e.setAttribute(k, v); }
  }
  for (const c of children) { e.append(c); }
  return e;
}

// bilinear upsampling of a (mh, mw) map to (H, W), align_corners=False (torch's convention)
function upsample(map, mh, mw, H, W) {
  const out = new Float32Array(H * W);
  for (let i = 0; i < H; i++) {
    let y = (i + 0.5) * mh / H - 0.5; y = Math.max(0, y);
    const y0 = Math.min(Math.floor(y), mh - 1), y1 = Math.min(y0 + 1, mh - 1), fy = y - y0;
    for (let j = 0; j < W; j++) {
      let x = (j + 0.5) * mw / W - 0.5; x = Math.max(0, x);
      const x0 = Math.min(Math.floor(x), mw - 1), x1 = Math.min(x0 + 1, mw - 1), fx = x - x0;
      out[i * W + j] = (1 - fy) * ((1 - fx) * map[y0 * mw + x0] + fx * map[y0 * mw + x1])
                     + fy * ((1 - fx) * map[y1 * mw + x0] + fx * map[y1 * mw + x1]);
    }
  }
  return out;
}

function minmax(m) {
  let lo = Infinity, hi = -Infinity;
  for (const v of m) { if (v < lo) { lo = v; } if (v > hi) { hi = v; } }
  const out = new Float32Array(m.length);
  if (hi - lo > 0) { for (let i = 0; i < m.length; i++) { out[i] = (m[i] - lo) / (hi - lo); } }
  return out;
}

// the photo (ImageData of PANEL x PANEL) with a (mh, mw) map over it; returns a canvas
function overlayCanvas(ctx, photo, map, mh, mw, marker, mask, side) {
  const c = h('canvas', {width: PANEL, height: PANEL, class: 'al-panel'});
  const g = c.getContext('2d');
  const img = new ImageData(new Uint8ClampedArray(photo.data), PANEL, PANEL);
  if (map) {
    const m = minmax(upsample(map, mh, mw, PANEL, PANEL));
    const a = ctx.data.alpha, lut = ctx.data.lut;
    for (let i = 0; i < m.length; i++) {
      const col = lut[Math.min(lut.length - 1, Math.round(m[i] * (lut.length - 1)))];
      for (let k = 0; k < 3; k++) { img.data[4 * i + k] = (1 - a) * img.data[4 * i + k] + a * col[k]; }
    }
  }
  g.putImageData(img, 0, 0);
  if (mask) {  // the target's outline in cyan, as in the precomputed figures
    const f = PANEL / side;
    g.strokeStyle = '#00ffff'; g.lineWidth = 1; g.beginPath();
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const v = mask[y * side + x];
        if (x > 0 && mask[y * side + x - 1] !== v) { g.moveTo(x * f, y * f); g.lineTo(x * f, (y + 1) * f); }
        if (y > 0 && mask[(y - 1) * side + x] !== v) { g.moveTo(x * f, y * f); g.lineTo((x + 1) * f, y * f); }
      }
    }
    g.stroke();
  }
  if (marker) {
    g.strokeStyle = '#00ffff'; g.lineWidth = 2;
    const [r, cc] = marker, x = cc * PANEL, y = r * PANEL;
    g.beginPath(); g.moveTo(x - 7, y); g.lineTo(x + 7, y); g.moveTo(x, y - 7); g.lineTo(x, y + 7); g.stroke();
  }
  return c;
}

function colorbar(ctx, label) {
  const c = h('canvas', {width: 120, height: 10, class: 'al-cbar'});
  const g = c.getContext('2d');
  const lut = ctx.data.lut;
  for (let x = 0; x < 120; x++) {
    const col = lut[Math.round(x / 119 * (lut.length - 1))];
    g.fillStyle = `rgb(${col[0]},${col[1]},${col[2]})`; g.fillRect(x, 0, 1, 10);
  }
  return h('div', {class: 'al-cbar-box'}, h('span', {}, '0 '), c, h('span', {}, ' 1'), h('div', {class: 'al-cap'}, label));
}

// a gate (D values in [0, 1]) as a strip of cells in the colormap, raw values
function gateStrip(ctx, values) {
  const n = values.length, c = h('canvas', {width: PANEL, height: 18, class: 'al-gate'});
  const g = c.getContext('2d'), lut = ctx.data.lut;
  for (let i = 0; i < n; i++) {
    const v = Math.max(0, Math.min(1, values[i]));
    const col = lut[Math.round(v * (lut.length - 1))];
    g.fillStyle = `rgb(${col[0]},${col[1]},${col[2]})`;
    g.fillRect(Math.floor(i * PANEL / n), 0, Math.ceil(PANEL / n), 18);
  }
  return c;
}

// the page's image as ImageData of PANEL x PANEL (nearest-neighbour: the model's own pixels)
function photoData(rgba, side) {
  const c = h('canvas', {width: side, height: side});
  c.getContext('2d').putImageData(new ImageData(rgba, side, side), 0, 0);
  const big = h('canvas', {width: PANEL, height: PANEL});
  const g = big.getContext('2d');
  g.imageSmoothingEnabled = false;
  g.drawImage(c, 0, 0, PANEL, PANEL);
  return g.getImageData(0, 0, PANEL, PANEL);
}

function tensorFromRGBA(rgba, side) {
  const n = side * side, x = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) { for (let k = 0; k < 3; k++) { x[k * n + i] = rgba[4 * i + k] / 255; } }
  return x;
}

function decodePNG(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('scene image did not decode'));
    img.src = url;
  });
}

// an uploaded file -> {rgba (side x side), note} or throws an Error with the reader's message
async function readUpload(file, side) {
  let bmp;
  try {
    bmp = await createImageBitmap(file);
  } catch (e) {
    throw new Error(`“${file.name}” is not an image this browser can read (${file.type || 'unknown type'}, ` +
                    `${file.size} bytes). Choose a PNG, JPEG, GIF or WebP photo.`);
  }
  const W = bmp.width, H = bmp.height;
  if (W < MIN_SIDE || H < MIN_SIDE) {
    bmp.close();
    throw new Error(`“${file.name}” is ${W}×${H} pixels: too small to show anything. The models see ` +
                    `${side}×${side} pixels; give an image of at least ${MIN_SIDE}×${MIN_SIDE}.`);
  }
  // centre square crop, downscaled in steps of at most 2x (a huge photo is reduced before it is drawn)
  const s = Math.min(W, H);
  let src = bmp, sx = (W - s) / 2, sy = (H - s) / 2, ss = s;
  while (ss > 4 * side) {
    const half = Math.ceil(ss / 2), c = h('canvas', {width: half, height: half});
    c.getContext('2d').drawImage(src, sx, sy, ss, ss, 0, 0, half, half);
    src = c; sx = 0; sy = 0; ss = half;
  }
  const probe = h('canvas', {width: side, height: side});
  const pg = probe.getContext('2d', {willReadFrequently: true});
  pg.imageSmoothingQuality = 'high';
  pg.drawImage(src, sx, sy, ss, ss, 0, 0, side, side);
  const raw = pg.getImageData(0, 0, side, side).data;
  // 'fully transparent' means every pixel has alpha 0; an image that is translucent everywhere (alpha < 255
  // but not 0) still has content: it is shown over white like any partly transparent image
  let transparent = 0, clear = 0;
  for (let i = 3; i < raw.length; i += 4) { if (raw[i] < 255) { transparent++; } if (raw[i] === 0) { clear++; } }
  const notes = [];
  if (clear === side * side) {
    bmp.close();
    throw new Error(`“${file.name}” is fully transparent: there is nothing to classify.`);
  }
  if (transparent > 0) { notes.push(`it has transparent pixels (${Math.round(100 * transparent / (side * side))} %), shown over white`); }
  const c = h('canvas', {width: side, height: side});
  const g = c.getContext('2d', {willReadFrequently: true});
  g.fillStyle = '#ffffff'; g.fillRect(0, 0, side, side);
  g.drawImage(probe, 0, 0);
  bmp.close();
  const note = `Your image (${W}×${H}), cropped to its centre square and downscaled to ${side}×${side}` +
               (notes.length ? '; ' + notes.join('; ') : '') + '. No Grad-CAM of the baseline: it is precomputed for the test scenes only.';
  return {rgba: g.getImageData(0, 0, side, side).data, note, name: file.name};
}

const STYLE = `
.attnlib-live { border: 1px solid #ccc; border-radius: 6px; padding: .6em .8em; margin: 1em 0; }
.attnlib-live .al-row { display: flex; flex-wrap: wrap; gap: .8em; align-items: flex-start; margin: .4em 0; }
.attnlib-live figure { margin: 0; text-align: center; font-size: .8em; max-width: ${PANEL + 10}px; }
.attnlib-live .al-panel { display: block; border: 1px solid #999; }
.attnlib-live .al-click { cursor: crosshair; }
.attnlib-live .al-thumbs { display: flex; flex-wrap: wrap; gap: 3px; }
.attnlib-live .al-thumbs button { padding: 0; border: 2px solid transparent; background: none; line-height: 0; cursor: pointer; }
.attnlib-live .al-thumbs button[aria-pressed="true"] { border-color: #dd8452; }
.attnlib-live .al-thumbs img { width: 40px; height: 40px; image-rendering: pixelated; }
.attnlib-live .al-message { color: #b00020; font-weight: 600; }
.attnlib-live .al-message:empty, .attnlib-live .al-note:empty { display: none; }
.attnlib-live .al-cap { font-size: .75em; color: #555; }
.attnlib-live .al-cbar-box { font-size: .75em; }
.attnlib-live .al-pred { font-size: 1.05em; }
`;

export async function mount(el, base) {
  const t0 = performance.now();
  const status = el.querySelector('.al-status');
  status.textContent = 'Loading the live model (onnxruntime-web)… The figures above are precomputed.';
  graph(base, el.dataset.model);
  const ctx = await loadShared(base);
  const tShared = performance.now();
  const names = JSON.parse(el.dataset.models);
  let current = el.dataset.model;
  if (!document.getElementById('attnlib-live-style')) {
    document.head.append(h('style', {id: 'attnlib-live-style'}, STYLE));
  }
  const side = ctx.data.size;
  const scenes = ctx.data.scenes;
  const state = {source: null, query: null, result: null};

  const select = h('select', {'aria-label': 'zoo model'});
  for (const n of names) { select.append(h('option', {value: n}, n)); }
  select.value = current;
  const thumbs = h('div', {class: 'al-thumbs', role: 'group', 'aria-label': 'held-out test scenes'});
  const file = h('input', {type: 'file', accept: 'image/*', 'aria-label': 'upload a photo'});
  const cameraBtn = h('button', {type: 'button', hidden: ''}, 'Camera');
  const video = h('video', {hidden: '', playsinline: '', muted: '', width: PANEL, height: PANEL});
  const snapBtn = h('button', {type: 'button', hidden: ''}, 'Take the photo');
  const message = h('p', {class: 'al-message', role: 'alert'});
  const note = h('p', {class: 'al-note al-cap'});
  const pred = h('p', {class: 'al-pred'});
  const panels = h('div', {class: 'al-row'});
  const legend = h('div', {});
  const controls = h('div', {class: 'al-row'},
    names.length > 1 ? h('label', {}, 'Model ', select) : h('span', {}, h('strong', {}, current)),
    h('label', {}, 'Your photo ', file), cameraBtn, snapBtn);
  const ui = h('div', {class: 'al-ui'}, controls, h('div', {class: 'al-cap'}, 'Held-out test scenes (never seen in training):'),
               thumbs, video, message, note, pred, panels, legend);

  scenes.forEach((s, i) => {
    const b = h('button', {type: 'button', 'aria-pressed': 'false', title: `test scene ${s.index}: ${ctx.data.classes[s.label]}`,
                           'data-scene': String(i)}, h('img', {src: s.image, alt: `test scene ${s.index}`}));
    b.addEventListener('click', () => pickScene(i).catch(err => { message.textContent = err.message; }));
    thumbs.append(b);
  });

  function maskOf(s) {
    const bits = Uint8Array.from(atob(s.mask), ch => ch.charCodeAt(0));
    const m = new Uint8Array(side * side);
    for (let i = 0; i < m.length; i++) { m[i] = (bits[i >> 3] >> (7 - (i & 7))) & 1; }
    return m;
  }

  async function compute() {
    const src = state.source;
    if (!src) { return; }
    const name = current;
    const res = await infer(ctx, name, tensorFromRGBA(src.rgba, side), side, side);
    if (src !== state.source || name !== current) { return; }  // the reader moved on
    state.result = res;
    render();
    el.dataset.model = name;
    el.dataset.logits = JSON.stringify(Array.from(res.logits.data));
    el.dataset.pred = ctx.data.classes[argmax(res.logits.data)];
    el.dataset.results = String(Number(el.dataset.results || 0) + 1);
    if (!el.dataset.firstResultMs) { el.dataset.firstResultMs = String(Math.round(performance.now())); }
  }

  function argmax(a) { let k = 0; for (let i = 1; i < a.length; i++) { if (a[i] > a[k]) { k = i; } } return k; }

  function render() {
    const res = state.result, src = state.source, info = ctx.data.models[current];
    const logits = res.logits.data, mx = Math.max(...logits);
    const e = Array.from(logits, v => Math.exp(v - mx)), z = e.reduce((a, b) => a + b, 0);
    const order = e.map((v, i) => [v / z, i]).sort((a, b) => b[0] - a[0]);
    const top = ctx.data.classes[order[0][1]];
    let truth = '';
    if (src.scene !== undefined) {
      const lab = ctx.data.classes[scenes[src.scene].label];
      truth = ` — the scene's label: ${lab} ${lab === top ? '✓' : '✗'}`;
    }
    pred.textContent = `${current} predicts: ${top} (${(100 * order[0][0]).toFixed(1)} %)${truth}; then ` +
      order.slice(1, 3).map(([p, i]) => `${ctx.data.classes[i]} ${(100 * p).toFixed(1)} %`).join(', ');
    const photo = photoData(src.rgba, side);
    panels.replaceChildren();
    const block = info.block;
    const clickable = block === 'nonlocal' || block === 'gc';
    const q = state.query || src.query || [0.5, 0.5];
    const base = overlayCanvas(ctx, photo, null, 0, 0, clickable ? q : null, src.mask, side);
    if (clickable) {
      base.classList.add('al-click');
      base.addEventListener('click', ev => {
        const r = base.getBoundingClientRect();
        state.query = [Math.min(0.999, Math.max(0, (ev.clientY - r.top) / r.height)),
                       Math.min(0.999, Math.max(0, (ev.clientX - r.left) / r.width))];
        el.dataset.query = JSON.stringify(state.query);
        render();
      });
    }
    panels.append(h('figure', {}, base, h('figcaption', {}, src.scene !== undefined ? `test scene ${scenes[src.scene].index} (target outlined)` : src.name)));
    const maps = [];
    for (const k of Object.keys(res).sort()) {
      const t = res[k];
      const stage = Number(k.replace(/\D+/g, '')) + 1;
      if (k.startsWith('rows')) {  // Non-local: the row of the query
        const [, N, mh, mw] = t.dims;
        const qi = Math.min(Math.floor(q[0] * mh), mh - 1) * mw + Math.min(Math.floor(q[1] * mw), mw - 1);
        const row = t.data.subarray(qi * mh * mw, (qi + 1) * mh * mw);
        maps.push([`stage ${stage}: attention row of the query (+)`, row, mh, mw, k]);
      } else if (k.startsWith('map')) {
        let data = t.data, mh = t.dims[t.dims.length - 2], mw = t.dims[t.dims.length - 1];
        let label = `stage ${stage}: ${block === 'gc' ? 'context map (the same for every query)' : 'map'}`;
        if (t.dims.length === 4) {  // Encoding: K codeword maps; the one the card chose on validation scenes
          const kk = info.codeword || 0;
          data = data.subarray(kk * mh * mw, (kk + 1) * mh * mw);
          label = `stage ${stage}: codeword ${kk} assignments`;
        }
        maps.push([label, data, mh, mw, k]);
      }
    }
    el.attnlibLive.shown = Object.fromEntries(maps.map(([, m, mh, mw, k]) => [k, {dims: [mh, mw], data: Array.from(m)}]));
    el.attnlibLive.query = q;
    for (const [label, m, mh, mw, k] of maps) {
      const c = overlayCanvas(ctx, photo, m, mh, mw, clickable ? q : null, src.mask, side);
      c.dataset.output = k;
      if (clickable) {
        c.classList.add('al-click');
        c.addEventListener('click', ev => base.dispatchEvent(new MouseEvent('click', {clientX: ev.clientX - c.getBoundingClientRect().left + base.getBoundingClientRect().left,
          clientY: ev.clientY - c.getBoundingClientRect().top + base.getBoundingClientRect().top})));
      }
      panels.append(h('figure', {}, c, h('figcaption', {}, `${current}, ${label} (${mh}×${mw})`)));
    }
    if (!maps.length) {
      const g = Object.keys(res).filter(k => k.startsWith('gate'));
      const fig = h('figure', {}, h('figcaption', {}, current === 'baseline' ? 'the baseline has no attention block' :
        `${current} has no spatial map: its gate has one value per channel or kernel (raw values in [0, 1]):`));
      for (const k of g) {
        fig.append(h('div', {class: 'al-cap'}, `stage ${Number(k.slice(4)) + 1} (${res[k].data.length} values)`), gateStrip(ctx, res[k].data));
      }
      panels.append(fig);
    }
    if (src.scene !== undefined) {
      const cam = scenes[src.scene].baseline_grad_cam;
      panels.append(h('figure', {}, overlayCanvas(ctx, photo, Float32Array.from(cam.flat()), cam.length, cam[0].length, null, src.mask, side),
        h('figcaption', {}, `baseline: Grad-CAM, stage ${ctx.data.grad_cam_stage + 1} (precomputed)`)));
    }
    legend.replaceChildren(colorbar(ctx, (maps.length ? 'attention (min-max normalised to [0, 1]) over the photo'
      : 'gate values (raw, in [0, 1]); the Grad-CAM panel min-max normalised to [0, 1]') + '; computed in your browser' +
      (block === 'nonlocal' ? '. Click the image to pick the query.' : block === 'gc' ? '. Click the image: the context map stays the same, whatever the query.' : '')));
  }

  // every scene pick and upload takes a ticket; after its own awaits (decoding) only the latest one may set
  // the source, so a slow decode (a large upload) cannot replace what the reader chose after it
  let ticket = 0;

  async function pickScene(i) {
    const mine = ++ticket;
    message.textContent = '';
    const s = scenes[i];
    thumbs.querySelectorAll('button').forEach(b => b.setAttribute('aria-pressed', b.dataset.scene === String(i) ? 'true' : 'false'));
    const img = await decodePNG(s.image);
    if (mine !== ticket) { return; }
    const c = h('canvas', {width: side, height: side});
    const g = c.getContext('2d', {willReadFrequently: true});
    g.drawImage(img, 0, 0);
    state.query = null;
    state.source = {scene: i, rgba: g.getImageData(0, 0, side, side).data, mask: maskOf(s), query: s.query};
    note.textContent = '';
    await compute();
  }

  async function useUpload(f) {
    const mine = ++ticket;
    message.textContent = '';
    try {
      const up = await readUpload(f, side);
      if (mine !== ticket) { return; }
      thumbs.querySelectorAll('button').forEach(b => b.setAttribute('aria-pressed', 'false'));
      state.query = null;
      state.source = {rgba: up.rgba, name: up.name, query: [0.5, 0.5]};
      note.textContent = up.note;
      await compute();
    } catch (e) {
      if (mine === ticket) { message.textContent = e.message; }
    }
  }

  file.addEventListener('change', () => { if (file.files && file.files[0]) { useUpload(file.files[0]); } file.value = ''; });
  select.addEventListener('change', () => { current = select.value; state.query = null; compute().catch(err => { message.textContent = err.message; }); });
  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.isSecureContext) {
    cameraBtn.hidden = false;
    cameraBtn.addEventListener('click', async () => {
      try {
        video.srcObject = await navigator.mediaDevices.getUserMedia({video: true});
        video.hidden = false; snapBtn.hidden = false; await video.play();
      } catch (e) { message.textContent = 'No camera available: ' + e.message; }
    });
    snapBtn.addEventListener('click', async () => {
      const c = h('canvas', {width: video.videoWidth, height: video.videoHeight});
      c.getContext('2d').drawImage(video, 0, 0);
      video.srcObject.getTracks().forEach(t => t.stop());
      video.hidden = true; snapBtn.hidden = true;
      c.toBlob(b => useUpload(new File([b], 'camera.png', {type: 'image/png'})));
    });
  }

  // for the browser tests and the benchmark: run any model on any image; what the panels show
  el.attnlibLive = {shown: {}, query: null,
    infer: (name, data, hh, ww) => infer(ctx, name, Float32Array.from(data), hh, ww)
      .then(r => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, {dims: v.dims, data: Array.from(v.data)}]))),
    pickScene, upload: useUpload,
  };
  await session(ctx, current);
  const tSession = performance.now();
  status.textContent = '';
  status.hidden = true;
  el.append(ui);
  await pickScene(0);
  el.dataset.state = 'ready';
  el.dataset.loadMs = String(Math.round(performance.now() - t0));
  // milliseconds from navigation start: the component's script ran, onnxruntime-web + data loaded, the
  // model's session was created, the first result was drawn
  el.dataset.timings = JSON.stringify({start: Math.round(t0), runtime: Math.round(tShared),
                                       session: Math.round(tSession), first: Math.round(performance.now())});
}
