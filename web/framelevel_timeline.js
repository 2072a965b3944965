// Live story timeline under FrameLevelPromptSchedule: as the story is typed, a bar shows each
// prompt's span in seconds, pixel frames and latent frames, the number of distinct prompts and the
// parse error. The numbers come from the pack's Python parser (POST /framelevel/story/timeline), so
// they are the numbers sampled. A DOM widget (not saved with the workflow), so it works in the
// classic canvas and in the Vue node renderer.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPE = "FrameLevelPromptSchedule";
const ROUTE = "/framelevel/story/timeline";
const INPUTS = ["text", "length", "length_unit", "format", "key_unit", "fps", "prefix", "suffix", "global_prompt"];
const POLL_MS = 250;

const STYLE = `
.framelevel-timeline { font: 11px/1.35 sans-serif; color: var(--input-text, #ddd); display: flex;
  flex-direction: column; gap: 3px; width: 100%; height: 100%; box-sizing: border-box; overflow: hidden; }
.framelevel-timeline .fl-summary { opacity: 0.85; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.framelevel-timeline .fl-bar { display: flex; height: 22px; min-height: 22px; border-radius: 3px; overflow: hidden;
  background: #222; }
.framelevel-timeline .fl-seg { color: #fff; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;
  padding: 3px 3px; box-sizing: border-box; border-right: 1px solid #111; }
.framelevel-timeline .fl-rows { overflow-y: auto; flex: 1; min-height: 0; }
.framelevel-timeline .fl-row { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.framelevel-timeline .fl-error { color: #ff8080; white-space: pre-wrap; overflow-y: auto; }
`;

function addStyle() {
  if (document.getElementById("framelevel-timeline-style")) return;
  const style = document.createElement("style");
  style.id = "framelevel-timeline-style";
  style.textContent = STYLE;
  document.head.appendChild(style);
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function colour(number) {
  return `hsl(${(number * 67) % 360} 55% 38%)`;
}

function inputsOf(node) {
  const values = {};
  for (const widget of node.widgets || []) {
    if (INPUTS.includes(widget.name)) values[widget.name] = widget.value;
  }
  return values;
}

function range(pair, unit) {
  return pair[0] === pair[1] ? `${unit} ${pair[0]}` : `${unit} ${pair[0]}–${pair[1]}`;
}

function seconds(pair) {
  return `${pair[0].toFixed(2)}–${pair[1].toFixed(2)} s`;
}

function renderSegments(root, answer) {
  const summary = element("div", "fl-summary",
    `${answer.format} (${answer.detected ? "detected" : "chosen"}) · ${answer.latent_frames} latent frames = ` +
    `${answer.pixel_frames} pixel frames = ${answer.seconds.toFixed(2)} s · ${answer.distinct} distinct ` +
    `prompt${answer.distinct === 1 ? "" : "s"}`);
  summary.dataset.distinct = String(answer.distinct);
  summary.dataset.format = answer.format;
  const bar = element("div", "fl-bar");
  const rows = element("div", "fl-rows");
  for (const segment of answer.segments) {
    const frames = segment.latent[1] - segment.latent[0] + 1;
    const label = `[${segment.number}] ${seconds(segment.seconds)} · ${range(segment.pixel, "pixel")} · ` +
      `${range(segment.latent, "latent")}`;
    const block = element("div", "fl-seg", `[${segment.number}]`);
    block.style.flex = `${frames} 0 0`;
    block.style.background = colour(segment.number);
    block.title = `${label}\n${segment.prompt}`;
    Object.assign(block.dataset, {
      number: String(segment.number), latentFirst: String(segment.latent[0]), latentLast: String(segment.latent[1]),
      pixelFirst: String(segment.pixel[0]), pixelLast: String(segment.pixel[1]),
      secondsStart: String(segment.seconds[0]), secondsEnd: String(segment.seconds[1]),
    });
    bar.appendChild(block);
    const row = element("div", "fl-row", `${label} · ${segment.prompt}`);
    row.style.borderLeft = `6px solid ${colour(segment.number)}`;
    row.style.paddingLeft = "4px";
    rows.appendChild(row);
  }
  root.replaceChildren(summary, bar, rows);
}

function renderError(root, message) {
  root.replaceChildren(element("div", "fl-error", message));
}

function attachTimeline(node) {
  addStyle();
  const root = element("div", "framelevel-timeline");
  root.dataset.nodeId = String(node.id);
  const widget = node.addDOMWidget("story_timeline", "framelevel_timeline", root, {
    serialize: false,
    hideOnZoom: false,
    getValue: () => "",
    setValue: () => {},
    getMinHeight: () => 110,
  });
  widget.serialize = false; // never part of widgets_values: saved workflows keep their positions
  let sent = null;
  let asked = 0;
  async function refresh() {
    root.dataset.nodeId = String(node.id);
    const inputs = inputsOf(node);
    const key = JSON.stringify(inputs);
    if (key === sent) return;
    sent = key;
    const ticket = ++asked;
    try {
      const response = await api.fetchApi(ROUTE, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: key,
      });
      const answer = await response.json();
      if (ticket !== asked) return; // a newer request is under way
      if (answer.ok) renderSegments(root, answer);
      else renderError(root, answer.error);
      root.dataset.state = answer.ok ? "ok" : "error";
    } catch (error) {
      if (ticket !== asked) return;
      renderError(root, `timeline unavailable: ${error}`);
      root.dataset.state = "unavailable";
    }
  }
  const timer = setInterval(refresh, POLL_MS);
  const removed = node.onRemoved;
  node.onRemoved = function () {
    clearInterval(timer);
    return removed?.apply(this, arguments);
  };
  refresh();
}

app.registerExtension({
  name: "framelevel.storyTimeline",
  nodeCreated(node) {
    if ((node.comfyClass || node.type) === NODE_TYPE) attachTimeline(node);
  },
});
