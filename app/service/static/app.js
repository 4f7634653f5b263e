// The review page: a client of the service's API, nothing more (the API is the source of truth).

const $ = (selector) => document.querySelector(selector);
const TOKEN_KEY = "describer-token";

const state = {
  job: null, // the job open in the player and review (a JobSummary)
  review: null, // its ReviewOut
  following: null, // AbortController of the followed event stream
  vttUrl: null,
  speaking: false,
  pausedForSpeech: false,
};

// --- API --------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    options = { ...options, body: JSON.stringify(options.json) };
  }
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    askForToken();
    throw new ApiError(401, { detail: "the service needs its API token" });
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = { detail: `HTTP ${response.status}` };
    }
    throw new ApiError(response.status, body);
  }
  return response;
}

const getJson = async (path, options) => (await api(path, options)).json();

// --- token ------------------------------------------------------------------------------------

function askForToken() {
  const section = $("#token-section");
  if (!section.hidden) return;
  section.hidden = false;
  $("#token").focus();
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token").value);
  $("#token").value = "";
  $("#token-section").hidden = true;
  start();
});

// --- submit -----------------------------------------------------------------------------------

async function addOptions() {
  // Only the options this service takes (audio rendering arrives with another issue).
  const schema = await (await fetch("openapi.json")).json();
  const fields = schema.components?.schemas?.ProcessRequest?.properties || {};
  const box = $("#extra-options");
  box.replaceChildren();
  if (fields.audio) {
    box.insertAdjacentHTML(
      "beforeend",
      '<div class="field inline"><input id="opt-audio" type="checkbox">' +
        '<label for="opt-audio">Render a spoken description track</label></div>',
    );
  }
  if (fields.language) {
    box.insertAdjacentHTML(
      "beforeend",
      '<div class="field"><label for="opt-language">Language (BCP 47, e.g. en, ru)</label>' +
        '<input id="opt-language" type="text"></div>',
    );
  }
}

$("#submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { url: $("#url").value.trim(), subtitles: $("#subtitles").value.trim() || null };
  if ($("#opt-audio")?.checked) body.audio = true;
  if ($("#opt-language")?.value.trim()) body.language = $("#opt-language").value.trim();
  const message = $("#submit-message");
  try {
    const accepted = await getJson("process", { method: "POST", json: body });
    message.textContent = accepted.created
      ? `Job ${accepted.job_id} queued.`
      : `The same film is already being described: job ${accepted.job_id}.`;
    await loadJobs();
    follow(accepted.job_id);
  } catch (error) {
    message.textContent = `Not queued: ${error.message}`;
  }
});

// --- job list and progress --------------------------------------------------------------------

function describeProgress(job) {
  const p = job.progress || {};
  const stage = p.stage || job.status;
  const percent = Math.round((p.fraction || 0) * 100);
  let text = `Job ${job.job_id}: ${job.status}`;
  if (job.status === "running") text += `, ${stage} ${percent}%`;
  if (p.scenes_found) text += `, ${p.scenes_found} scenes found, ${p.scenes_captioned || 0} described`;
  if (job.reason) text += ` (${job.reason})`;
  return text;
}

async function loadJobs() {
  const { jobs } = await getJson("jobs");
  const body = $("#jobs tbody");
  body.replaceChildren(
    ...jobs.map((job) => {
      const row = document.createElement("tr");
      row.dataset.jobId = job.job_id;
      const film = document.createElement("td");
      film.textContent = job.url;
      const status = document.createElement("td");
      status.className = "status";
      status.textContent = job.status;
      const created = document.createElement("td");
      created.textContent = new Date(job.created_at).toLocaleString();
      const action = document.createElement("td");
      const open = document.createElement("button");
      open.type = "button";
      open.textContent = "Open";
      open.setAttribute("aria-label", `Open job ${job.job_id} (${job.url})`);
      open.addEventListener("click", () => follow(job.job_id));
      action.append(open);
      row.append(film, status, created, action);
      return row;
    }),
  );
}

function showProgress(job) {
  $("#progress-text").textContent = describeProgress(job);
  const bar = $("#progress");
  bar.hidden = false;
  bar.value = job.status === "processed" ? 1 : job.progress?.fraction || 0;
  const cell = document.querySelector(`#jobs tr[data-job-id="${job.job_id}"] .status`);
  if (cell) cell.textContent = job.status;
}

function parseEvent(block) {
  const event = { event: "message", data: "" };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") event.data += (event.data ? "\n" : "") + value;
    else event[field] = value;
  }
  return event;
}

// Follows a job through GET /jobs/{id}/events; fetch, not EventSource, so the token can be sent.
async function follow(jobId) {
  state.following?.abort();
  const controller = new AbortController();
  state.following = controller;
  let last = null;
  try {
    const response = await api(`jobs/${jobId}/events`, {
      signal: controller.signal,
      headers: { Accept: "text/event-stream" },
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event.event === "job") {
          last = JSON.parse(event.data);
          showProgress(last);
        }
      }
    }
  } catch (error) {
    if (error.name === "AbortError") return;
    $("#progress-text").textContent = `Cannot follow job ${jobId}: ${error.message}`;
    return;
  }
  if (state.following === controller) state.following = null;
  if (last?.status === "processed") await openJob(last);
  else if (last && !["processed", "not_processed"].includes(last.status)) {
    // The stream closed without the job ending: the service is restarting.
    $("#progress-text").textContent += " (no longer followed: press Open to follow it again)";
  }
}

// --- player -----------------------------------------------------------------------------------

const video = $("#video");
const adAudio = $("#ad-audio");

async function openJob(job) {
  state.job = job;
  const first = $("#player-section").hidden;
  $("#player-section").hidden = false;
  $("#review-section").hidden = false;
  if (video.dataset.src !== job.url) {
    video.dataset.src = job.url;
    video.dataset.copy = "";
    video.src = job.url;
  }
  await Promise.all([loadReview(), loadTrack(), loadRenderedAudio()]);
  if (first) $("#player-heading").focus();
}

// The film's own URL cannot be played here (the browser cannot reach it): an audio job's
// rendered copy, the film with its description track, is served by the service itself.
video.addEventListener("error", async () => {
  const job = state.job;
  if (!job?.audio || video.dataset.copy) return;
  video.dataset.copy = "yes";
  const path = `jobs/${job.job_id}/media`;
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    video.src = path; // streamed with range requests
  } else {
    // A <video> cannot send the token: the copy comes through the API, whole.
    video.src = URL.createObjectURL(await (await api(path)).blob());
  }
  $("#now-speaking").textContent = "Playing the service's copy of the film.";
});

async function loadTrack() {
  const vtt = await (await api(`jobs/${state.job.job_id}/descriptions?format=vtt`)).text();
  if (state.vttUrl) URL.revokeObjectURL(state.vttUrl);
  state.vttUrl = URL.createObjectURL(new Blob([vtt], { type: "text/vtt" }));
  video.querySelector("track")?.remove();
  const track = document.createElement("track");
  track.kind = "descriptions";
  track.label = "Descriptions";
  track.srclang = state.review?.language || "en";
  track.src = state.vttUrl;
  track.default = true;
  video.append(track);
  track.track.mode = "hidden"; // not shown; its cues drive speech
  track.track.addEventListener("cuechange", () => onCueChange(track.track));
  await new Promise((resolve, reject) => {
    if (track.readyState === 2) resolve();
    track.addEventListener("load", resolve, { once: true });
    track.addEventListener("error", () => reject(new Error("the WebVTT did not load")), {
      once: true,
    });
  });
}

async function loadRenderedAudio() {
  // The rendered description track, when the job has one (404: it has none).
  let blob = null;
  try {
    blob = await (await api(`jobs/${state.job.job_id}/audio`)).blob();
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  $("#rendered-choice").hidden = blob === null;
  if (adAudio.src) URL.revokeObjectURL(adAudio.src);
  adAudio.removeAttribute("src");
  if (blob) adAudio.src = URL.createObjectURL(blob);
}

function play(media = video) {
  media.play().catch((error) => {
    // A play interrupted by a pause (extended mode, the viewer) is no failure.
    if (error.name !== "AbortError") {
      $("#now-speaking").textContent = `Cannot play the film: ${error.message}`;
    }
  });
}

const useRendered = () => Boolean(adAudio.src) && $("#use-rendered").checked;

for (const [event, action] of [
  ["play", () => useRendered() && play(adAudio)],
  ["pause", () => adAudio.pause()],
  ["seeked", () => (adAudio.currentTime = video.currentTime)],
  ["ratechange", () => (adAudio.playbackRate = video.playbackRate)],
]) {
  video.addEventListener(event, () => {
    if (adAudio.src) action();
  });
}

const seenCues = new WeakSet();

function onCueChange(track) {
  for (const cue of Array.from(track.activeCues || [])) {
    if (seenCues.has(cue)) continue;
    seenCues.add(cue);
    speak(cue.text);
  }
}

video.addEventListener("seeked", () => {
  // A cue played again after seeking back is spoken again.
  const track = video.querySelector("track")?.track;
  for (const cue of Array.from(track?.cues || [])) {
    if (cue.startTime >= video.currentTime) seenCues.delete(cue);
  }
});

function speak(text) {
  $("#now-speaking").textContent = text;
  if (!$("#speak").checked || useRendered()) return;
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = state.review?.language || "en";
  utterance.addEventListener("start", () => {
    state.speaking = true;
    if ($("#extended").checked && !video.paused) {
      state.pausedForSpeech = true;
      video.pause();
    }
  });
  const done = () => {
    state.speaking = false;
    if (state.pausedForSpeech) {
      state.pausedForSpeech = false;
      play();
    }
  };
  utterance.addEventListener("end", done);
  utterance.addEventListener("error", done);
  speechSynthesis.speak(utterance);
}

// --- review -----------------------------------------------------------------------------------

const seconds = (value) => Number(value).toFixed(2);

async function loadReview() {
  state.review = await getJson(`jobs/${state.job.job_id}/review`);
  const review = state.review;
  $("#review-summary").textContent =
    `${review.descriptions.length} descriptions, revision ${review.revision}, ` +
    `language ${review.language}, ${review.words_per_second} words per second.`;
  $("#cues").replaceChildren(...review.descriptions.map(cueItem));
}

function cueItem(d, index) {
  const item = document.createElement("li");
  item.className = "cue";
  item.dataset.id = d.id;
  const id = `cue-${d.id}`;
  item.innerHTML = `
    <form>
      <fieldset>
        <legend></legend>
        <div class="times">
          <div class="field"><label for="${id}-start">Start (s)</label>
            <input id="${id}-start" name="start" type="number" step="0.01" min="0"></div>
          <div class="field"><label for="${id}-end">End (s)</label>
            <input id="${id}-end" name="end" type="number" step="0.01" min="0"></div>
        </div>
        <div class="field"><label for="${id}-text">Text</label>
          <textarea id="${id}-text" name="text" rows="2" aria-describedby="${id}-note"></textarea></div>
        <p class="note" id="${id}-note"></p>
        <button type="submit">Save</button>
        <button type="button" class="seek">Play from here</button>
        <button type="button" class="delete">Delete</button>
      </fieldset>
    </form>`;
  item.querySelector("legend").textContent =
    `Description ${index + 1}, ${seconds(d.start)} to ${seconds(d.end)} s (version ${d.version})`;
  const form = item.querySelector("form");
  form.start.value = seconds(d.start);
  form.end.value = seconds(d.end);
  form.text.value = d.text;
  const words = d.text.split(/\s+/).filter(Boolean).length;
  item.querySelector(".note").textContent =
    `${words} words; the window holds ${d.max_words}` + (words > d.max_words ? " (too long)." : ".");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const change = { version: d.version };
    if (form.text.value !== d.text) change.text = form.text.value;
    if (form.start.value !== seconds(d.start)) change.start = Number(form.start.value);
    if (form.end.value !== seconds(d.end)) change.end = Number(form.end.value);
    save(
      `Description ${index + 1} saved`,
      api(`jobs/${state.job.job_id}/descriptions/${d.id}`, { method: "PATCH", json: change }),
      form,
    );
  });
  item.querySelector(".seek").addEventListener("click", () => {
    video.currentTime = d.start;
    play();
  });
  item.querySelector(".delete").addEventListener("click", () => {
    save(
      `Description ${index + 1} deleted`,
      api(`jobs/${state.job.job_id}/descriptions/${d.id}?version=${d.version}`, {
        method: "DELETE",
      }),
      form,
    );
  });
  return item;
}

// Runs a change, then says how it went and reloads the list and the track from the API.
async function save(what, request, form) {
  const message = $("#review-message");
  for (const input of form?.querySelectorAll("[aria-invalid]") || []) {
    input.removeAttribute("aria-invalid");
  }
  try {
    const body = await (await request).json();
    const warnings = body.warnings?.length ? ` Warning: ${body.warnings.join("; ")}` : "";
    message.textContent = `${what}.${warnings}`;
  } catch (error) {
    message.textContent = `Not saved: ${error.message}`;
    const field = error.body?.errors?.[0]?.field;
    const input = field && form?.elements?.namedItem(field);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    if (error.status !== 409) return;
  }
  await Promise.all([loadReview(), loadTrack()]);
}

$("#insert-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("#insert-text").value;
  save(
    `Description inserted at ${seconds(video.currentTime)} s`,
    api(`jobs/${state.job.job_id}/descriptions`, {
      method: "POST",
      json: { start: video.currentTime, text },
    }).then((response) => {
      $("#insert-text").value = "";
      return response;
    }),
    $("#insert-form"),
  );
});

$("#approve").addEventListener("click", async () => {
  const message = $("#review-message");
  try {
    const approval = await getJson(`jobs/${state.job.job_id}/approve`, { method: "POST" });
    message.textContent =
      `Approved revision ${approval.revision}: ${approval.descriptions} descriptions ` +
      (approval.created ? "sent to core." : "were already sent to core.");
  } catch (error) {
    message.textContent = `Not approved: ${error.message}`;
  }
});

// --- start ------------------------------------------------------------------------------------

$("#refresh-jobs").addEventListener("click", () => loadJobs());

async function start() {
  try {
    await Promise.all([addOptions(), loadJobs()]);
  } catch (error) {
    if (error.status !== 401) $("#submit-message").textContent = error.message;
  }
}

start();
