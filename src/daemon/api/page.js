"use strict";
let token = sessionStorage.getItem("edgeid-token") || "";
let lastId = 0;
const $ = (id) => document.getElementById(id);

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

async function api(path, options = {}) {
  options.headers = Object.assign({ Authorization: "Bearer " + token }, options.headers || {});
  const r = await fetch(path, options);
  if (!r.ok) {
    let message = r.status + " " + r.statusText;
    try { message = (await r.json()).error || message; } catch (_) {}
    throw new Error(message);
  }
  return r;
}

function showError(e) { $("error").textContent = e ? String(e.message || e) : ""; }

async function showCrop(td, url) {
  try {
    const blob = await (await api(url)).blob();
    const img = document.createElement("img");
    img.className = "crop";
    img.alt = "face";
    img.src = URL.createObjectURL(blob);
    td.appendChild(img);
  } catch (_) {}
}

function addDecision(d, atTop) {
  if ($("decisions").querySelector('tr[data-id="' + d.id + '"]')) return;
  const row = atTop ? $("decisions").insertRow(0) : $("decisions").insertRow();
  row.dataset.id = d.id;
  row.className = d.outcome + ((d.wrong || []).length ? " marked" : "");
  const crop = cell(row, "");
  if (d.crop) showCrop(crop, d.crop);
  cell(row, new Date(d.time_ms).toLocaleString(), "when");
  cell(row, d.camera);
  cell(row, d.outcome, "outcome");
  cell(row, d.identity || (d.reasons || []).join(", "), "who");
  cell(row, d.similarity == null ? "" : d.similarity.toFixed(3));
  const mark = document.createElement("button");
  mark.textContent = (d.wrong || []).length ? "marked wrong" : "wrong?";
  mark.disabled = (d.wrong || []).length > 0;
  mark.onclick = async () => {
    const note = prompt("What was wrong with this decision?", "");
    if (note === null) return;
    const who = prompt("Who was it really? Their enrolled name, or leave empty if unknown.", "");
    if (who === null) return;
    try {
      await api("/api/decisions/" + d.id + "/wrong", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ note, truth: who.trim() || null }),
      });
      row.classList.add("marked");
      mark.textContent = "marked wrong";
      mark.disabled = true;
    } catch (e) { showError(e); }
  };
  row.insertCell().appendChild(mark);
  while ($("decisions").rows.length > 200) $("decisions").deleteRow(-1);
  lastId = Math.max(lastId, d.id);
  if (atTop && d.outcome === "denied" && (d.reasons || []).includes("unknown")) {
    $("alert").textContent = "Unknown person at " + d.camera + ", " + new Date(d.time_ms).toLocaleString();
    $("alert").style.display = "block";
    setTimeout(() => { $("alert").style.display = "none"; }, 8000);
  }
}

async function loadDecisions() {
  const body = await (await api("/api/decisions?limit=50")).json();
  $("device").textContent = body.device;
  for (const d of body.decisions) addDecision(d, false);
}

async function loadIdentities() {
  const body = await (await api("/api/identities")).json();
  const tbody = $("identities");
  tbody.innerHTML = "";
  for (const who of body.identities) {
    const row = tbody.insertRow();
    row.dataset.name = who.name;
    cell(row, who.name, "name");
    cell(row, who.templates + " photo" + (who.templates === 1 ? "" : "s"), "muted");
    const remove = document.createElement("button");
    remove.textContent = "remove";
    remove.onclick = async () => {
      if (!confirm("Remove " + who.name + "? They are denied from the next frame on.")) return;
      try { await api("/api/identities/" + encodeURIComponent(who.name), { method: "DELETE" }); }
      catch (e) { showError(e); }
      loadIdentities();
    };
    row.insertCell().appendChild(remove);
  }
}

async function loadStatus() {
  const s = await (await api("/api/status")).json();
  const tbody = $("status");
  tbody.innerHTML = "";
  for (const c of s.cameras) {
    const row = tbody.insertRow();
    cell(row, "camera " + c.name);
    cell(row, (c.up ? "up" : "down") + ", " + c.frames_processed + " frames, " + c.frames_dropped + " dropped, "
      + c.decisions + " decisions, " + c.presentation_attacks + " denied as presentation attacks");
  }
  for (const o of s.outputs) {
    const row = tbody.insertRow();
    cell(row, "output " + o.name);
    cell(row, (o.failing ? "FAILING: " + o.failing + "; " : "") + "lag " + o.lag + ", " + o.delivered + " delivered");
  }
}

/// Decisions as they come: the server-sent event stream, read with fetch (EventSource cannot
/// send the token); it reconnects from the last id seen, so nothing is missed.
async function follow() {
  for (;;) {
    try {
      const r = await api("/api/events?after=" + lastId);
      $("live").textContent = "(live)";
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split("\n");
          const data = lines.filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          // The daemon ends the stream when the token is removed: sign in again.
          if (lines.includes("event: end")) {
            $("live").textContent = "";
            showError("the live view ended: " + data + "; sign in with another token");
            return;
          }
          if (data) addDecision(JSON.parse(data), true);
        }
      }
    } catch (e) { showError(e); }
    $("live").textContent = "(reconnecting)";
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

$("enrol").onsubmit = async (ev) => {
  ev.preventDefault();
  const name = $("enrol-name").value.trim();
  const file = $("enrol-file").files[0];
  if (!name || !file) return;
  $("enrol-result").textContent = "enrolling " + name + "…";
  try {
    const r = await api("/api/identities/" + encodeURIComponent(name), { method: "POST", body: file });
    const report = await r.json();
    $("enrol-result").textContent = "enrolled " + report.name;
    $("enrol").reset();
  } catch (e) { $("enrol-result").textContent = "not enrolled: " + e.message; }
  loadIdentities();
};

async function start() {
  showError(null);
  $("hint").style.display = "none";
  try {
    await loadDecisions();
    await loadIdentities();
    await loadStatus();
  } catch (e) { showError(e); return; }
  setInterval(() => loadStatus().catch(showError), 5000);
  follow();
}

$("signin").onclick = () => {
  token = $("token").value.trim();
  sessionStorage.setItem("edgeid-token", token);
  start();
};
if (token) start();
