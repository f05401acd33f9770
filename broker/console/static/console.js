// cmq-broker console: fills the page shells from the JSON API and keeps them current.
//
// Rule: data from the broker only ever reaches the page as text (textContent, text nodes,
// attribute values of our own making); never as HTML. Message bodies are untrusted.
"use strict";

(() => {
  const body = document.body;
  const PAGE = body.dataset.page || "";
  const SUBJECT = body.dataset.subject || "";
  const CSRF = body.dataset.csrf || "";
  const POLL_MS = 1500;
  const AUTO_PEEK_LIMIT = 10000; // bigger queues are peeked on request only: a peek scans them

  // -- DOM helpers --------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const $ = (selector) => document.querySelector(selector);
  const enc = encodeURIComponent;

  function when(t) {
    return t ? String(t).replace("T", " ").replace("Z", "") : "";
  }

  function badge(state) {
    const s = String(state || "");
    return el("span", { class: "badge s-" + s.toLowerCase().replace(/[^a-z0-9_-]/g, "") }, s || "-");
  }

  function link(href, text) {
    return el("a", { href }, text);
  }

  function fill(tbody, rows, makeRow, columns, emptyText) {
    const made = rows.map(makeRow);
    if (!made.length) {
      made.push(el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText)));
    }
    tbody.replaceChildren(...made);
  }

  function row(...cells) {
    return el("tr", {}, cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
  }

  function num(value) {
    return el("td", { class: "num" }, value === null || value === undefined ? "" : String(value));
  }

  function definitions(dl, pairs) {
    const items = [];
    for (const [name, value] of pairs) {
      items.push(el("dt", {}, name), el("dd", {}, value === null || value === undefined || value === "" ? "-" : value));
    }
    dl.replaceChildren(...items);
  }

  // -- talking to the broker ------------------------------------------------------------------

  class ApiError extends Error {}

  async function answer(response) {
    if (response.status === 401) {
      location.assign("/console/login?next=" + enc(location.pathname));
      throw new ApiError("log in first");
    }
    let data;
    try {
      data = await response.json();
    } catch (e) {
      throw new ApiError(`the broker answered ${response.status} without JSON`);
    }
    if (!response.ok || data.error) {
      const err = data.error || {};
      throw new ApiError(err.code ? `${err.code}: ${err.message}` : `error ${response.status}`);
    }
    return data;
  }

  async function getJSON(url) {
    return answer(await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }));
  }

  async function post(url, params) {
    const form = params || new URLSearchParams();
    if (!form.has("csrf")) form.set("csrf", CSRF);
    return answer(await fetch(url, {
      method: "POST", body: form, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": CSRF },
    }));
  }

  function go(path) {
    if (typeof path === "string" && path.startsWith("/console")) location.assign(path);
  }

  function report(output, text, failed) {
    if (!output) return;
    output.textContent = text;
    output.className = "result " + (failed ? "error" : "ok");
  }

  // -- live updates ---------------------------------------------------------------------------

  const refreshers = [];

  function refreshNow() {
    refreshers.forEach((fn) => fn());
  }

  function poll(url, render) {
    let busy = false;
    const live = $("#live");
    async function tick() {
      if (busy) return;
      busy = true;
      try {
        render(await getJSON(url()));
        if (live) { live.className = "live on"; live.title = "live: updated " + new Date().toLocaleTimeString(); }
      } catch (e) {
        if (live) { live.className = "live off"; live.title = "not updating: " + e.message; }
      } finally {
        busy = false;
      }
    }
    refreshers.push(tick);
    tick();
    setInterval(tick, POLL_MS);
  }

  // Forms marked data-api post themselves with fetch and report in their <output>.
  const afterSubmit = {};

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-api")) return;
    event.preventDefault();
    const output = form.querySelector("output");
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      // getAttribute: a field named "action" would shadow the form's own property.
      const reply = await post(form.getAttribute("action"), new URLSearchParams(new FormData(form)));
      report(output, reply.message || "done", false);
      if (afterSubmit[form.id]) afterSubmit[form.id](reply);
      if (reply.goto) return go(reply.goto);
      if (!form.hasAttribute("data-keep")) form.reset();
      refreshNow();
    } catch (e) {
      report(output, e.message, true);
    } finally {
      if (button) button.disabled = false;
    }
  });

  // Buttons marked data-post: a one-click change, confirmed first when it destroys something.
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-post]");
    if (!button) return;
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    const output = button.closest("tr")?.querySelector("output") || $("#toolbar-result");
    button.disabled = true;
    try {
      const params = new URLSearchParams();
      if (button.dataset.name) params.set(button.dataset.name, button.dataset.value || "");
      const reply = await post(button.dataset.post, params);
      report(output, reply.message || "done", false);
      if (reply.goto) return go(reply.goto);
      refreshNow();
    } catch (e) {
      report(output, e.message, true);
    } finally {
      button.disabled = false;
    }
  });

  // -- Batch events, in message views and timelines ------------------------------------------

  function about(ids) {
    return Object.entries(ids || {}).map(([k, v]) => `${k} ${v}`).join(" · ");
  }

  function eventRow(e, withTopics) {
    const cells = [
      when(e.time),
      el("td", { class: "event-name" }, e.name),
      about(e.ids),
      e.state ? badge(e.state) : "",
      num(e.exitCode),
      el("td", { class: "wrap" }, e.reason || ""),
    ];
    if (withTopics) cells.push((e.topics || []).join(", "));
    else cells.push((e.vars || []).map((v) => `${v.name}=${v.value}`).join(", "));
    return row(...cells);
  }

  function eventsTable(events) {
    const head = el("thead", {}, el("tr", {}, ["Time (UTC)", "Event", "About", "State", "Exit code", "Reason", "Event vars"]
      .map((h) => el("th", {}, h))));
    const tbody = el("tbody");
    fill(tbody, events, (e) => eventRow(e, false), 7, "no events");
    return el("table", { class: "data events decoded-events" }, head, tbody);
  }

  // -- overview -------------------------------------------------------------------------------

  function overview() {
    poll(() => "/console/api/overview", (d) => {
      $("#queue-count").textContent = `(${d.queues.length})`;
      $("#topic-count").textContent = `(${d.topics.length})`;
      $("#job-count").textContent = d.jobCount > d.jobs.length ? `(newest ${d.jobs.length} of ${d.jobCount})` : `(${d.jobCount})`;
      $("#env-count").textContent = `(${d.envs.length})`;
      fill($("#queues tbody"), d.queues, (q) => row(
        link("/console/queues/" + enc(q.name), q.name), num(q.active), num(q.inactive), num(q.delayed), num(q.kept),
      ), 5, "no queues yet");
      fill($("#topics tbody"), d.topics, (t) => row(
        link("/console/topics/" + enc(t.name), t.name), t.filterType, num(t.subscriptions), num(t.pending),
      ), 4, "no topics yet");
      fill($("#jobs tbody"), d.jobs, (j) => row(
        link("/console/jobs/" + enc(j.id), j.id), j.name, badge(j.state), when(j.created), when(j.ended),
      ), 5, "no jobs yet");
      fill($("#envs tbody"), d.envs, (e) => row(
        link("/console/envs/" + enc(e.id), e.id), e.name, badge(e.state), e.instanceType, num(e.desired),
        Object.entries(e.nodes).map(([k, v]) => `${k.replace("Count", "")} ${v}`).join(", ") || "none",
      ), 6, "no compute environments yet");
    });
  }

  // -- a queue ----------------------------------------------------------------------------------

  function messageView(d, receiptHandle) {
    const parts = [];
    const meta = el("dl", { class: "grid" });
    definitions(meta, [
      ["State", badge(d.state)], ["Enqueued (UTC)", when(d.enqueued)], ["Dequeues", String(d.dequeueCount)],
      ["Bytes", String(d.size)], ["Kind", d.kind], ["Receipt handle", receiptHandle || ""],
    ]);
    parts.push(meta);
    const dec = d.decoded || {};
    if (dec.events) parts.push(el("h3", {}, "Batch events"), eventsTable(dec.events));
    if (dec.json) parts.push(el("h3", {}, dec.text !== null ? "Decoded JSON (from Base64)" : "JSON"),
      el("pre", { class: "json" }, dec.json));
    else if (dec.text !== null && dec.text !== undefined) parts.push(el("h3", {}, "Decoded text (from Base64)"), el("pre", {}, dec.text));
    const raw = el("details", { class: "raw", open: dec.kind === "text" }, el("summary", {}, "Raw body"), el("pre", { class: "raw-body" }, d.body));
    parts.push(raw);
    return parts;
  }

  function showDetail(d, receiptHandle) {
    $("#detail-id").textContent = d.id;
    $("#detail-body").replaceChildren(...messageView(d, receiptHandle));
    $("#detail").hidden = false;
    $("#detail").scrollIntoView({ block: "nearest" });
  }

  function queue() {
    const api = "/console/api/queues/" + enc(SUBJECT);
    let auto = true;
    let peekRequested = true;
    const note = $("#peek-note");
    $("#peek-size").addEventListener("change", () => { peekRequested = true; refreshNow(); });
    $("#peek-now").addEventListener("click", () => { peekRequested = true; refreshNow(); });
    $("#detail-close").addEventListener("click", () => { $("#detail").hidden = true; });

    poll(() => api + "?peek=" + (auto || peekRequested ? $("#peek-size").value : "0"), (d) => {
      definitions($("#attributes"), [
        ["Queue id", d.id], ["Active (visible)", String(d.active)], ["Inactive (in flight)", String(d.inactive)],
        ["Delayed", String(d.delayed)], ["Kept for rewind", String(d.kept)],
        ["Visibility timeout", d.settings.visibilityTimeout + " s"], ["Retention", d.settings.msgRetentionSeconds + " s"],
        ["Rewind", d.settings.rewindSeconds + " s"], ["Max messages", String(d.settings.maxMsgHeapNum)],
        ["Max message size", d.settings.maxMsgSize + " B"], ["Polling wait", d.settings.pollingWaitSeconds + " s"],
        ["Oldest message (UTC)", when(d.oldest)], ["Created (UTC)", when(d.created)],
      ]);
      auto = d.active + d.inactive + d.delayed + d.kept <= AUTO_PEEK_LIMIT;
      note.textContent = auto ? "refreshes by itself" : "a big queue: peek refreshes when you ask";
      if (d.messages === null) return;
      peekRequested = false;
      fill($("#messages tbody"), d.messages, (m) => row(
        m.id, badge(m.state), when(m.enqueued), num(m.dequeueCount), num(m.size), badge(m.kind),
        el("td", { class: "preview" }, m.preview),
        el("td", {}, el("button", { type: "button", class: "view", onclick: () => openMessage(m.id) }, "View")),
      ), 8, "the queue is empty");
    });

    async function openMessage(id) {
      try {
        showDetail(await getJSON(api + "/messages/" + enc(id)));
      } catch (e) {
        report($("#toolbar-result"), e.message, true);
      }
    }

    afterSubmit["receive-form"] = (reply) => {
      const received = reply.messages || [];
      fill($("#received tbody"), received, (m) => row(
        m.id, el("td", { class: "handle" }, m.receiptHandle), badge(m.kind), el("td", { class: "preview" }, m.preview),
        el("td", { class: "nowrap" },
          el("button", { type: "button", class: "view", onclick: () => showDetail(m, m.receiptHandle) }, "View"),
          el("button", {
            type: "button", "data-post": api + "/delete-message", "data-name": "receiptHandle", "data-value": m.receiptHandle,
          }, "Delete"),
          el("output", { class: "result" })),
      ), 5, "nothing received");
    };
  }

  // -- a topic ----------------------------------------------------------------------------------

  function topic() {
    const api = "/console/api/topics/" + enc(SUBJECT);
    poll(() => api, (d) => {
      definitions($("#attributes"), [
        ["Topic id", d.id], ["Filter by", d.filterType], ["Subscriptions", String(d.subscriptions)],
        ["Pushes pending", String(d.pending)], ["Retention", d.settings.msgRetentionSeconds + " s"],
        ["Max message size", d.settings.maxMsgSize + " B"], ["Created (UTC)", when(d.created)],
      ]);
      fill($("#subscriptions tbody"), d.subscriptionList, (s) => row(
        s.name, s.protocol,
        s.protocol === "queue" ? link("/console/queues/" + enc(s.endpoint), s.endpoint) : el("td", { class: "endpoint" }, s.endpoint),
        [s.filterTags.length ? "tags: " + s.filterTags.join(", ") : "", s.bindingKeys.length ? "keys: " + s.bindingKeys.join(", ") : ""]
          .filter(Boolean).join("; ") || "everything",
        s.strategy, s.format, num(s.pending), num(s.delivered), num(s.dropped),
        el("td", { class: "nowrap" },
          el("button", {
            type: "button", class: "danger", "data-post": api + "/subscriptions/" + enc(s.name) + "/delete",
            "data-confirm": `Delete subscription ${s.name}?`,
          }, "Unsubscribe"),
          el("output", { class: "result" })),
      ), 10, "no subscriptions: published messages go nowhere");
    });
  }

  // -- a Batch job ------------------------------------------------------------------------------

  function job() {
    const api = "/console/api/jobs/" + enc(SUBJECT);
    poll(() => api, (d) => {
      definitions($("#attributes"), [
        ["Name", d.name], ["State", badge(d.state)], ["Zone", d.zone], ["Priority", String(d.priority)],
        ["Created (UTC)", when(d.created)], ["Ended (UTC)", when(d.ended)], ["Reason", d.reason],
        ["Instances", Object.entries(d.instanceMetrics).filter(([, v]) => v).map(([k, v]) => `${k.replace("Count", "")} ${v}`).join(", ")],
        ["Notifications", d.notifications.map((n) => `${n.topic}: ${n.events.join(", ")}`).join("; ") || "none"],
      ]);
      $("#tasks").replaceChildren(...d.taskList.map((t) => {
        const tbody = el("tbody");
        fill(tbody, t.Instances, (i) => row(
          num(i.TaskInstanceIndex), badge(i.TaskInstanceState), num(i.ExitCode), num(i.Attempts),
          i.Node || "", when(i.LaunchTime), when(i.RunningTime), when(i.EndTime),
          el("td", { class: "wrap" }, i.StateReason || ""),
        ), 9, "no instances");
        return el("div", { class: "task" },
          el("h3", {}, "Task ", el("span", { class: "subject" }, t.TaskName), " ", badge(t.TaskState),
            el("small", {}, ` ${t.InstanceNum} instance(s) on ${t.Env}` + (t.DependsOn.length ? `, after ${t.DependsOn.join(", ")}` : ""))),
          el("table", { class: "data instances" },
            el("thead", {}, el("tr", {}, ["Instance", "State", "Exit code", "Attempts", "Node", "Launched", "Running", "Ended", "Reason"]
              .map((h) => el("th", {}, h)))),
            tbody));
      }));
      fill($("#timeline tbody"), d.timeline, (e) => eventRow(e, true), 7, "no events yet");
    });
  }

  // -- a compute environment --------------------------------------------------------------------

  function env() {
    const api = "/console/api/envs/" + enc(SUBJECT);
    let sized = false;
    poll(() => api, (d) => {
      definitions($("#attributes"), [
        ["Name", d.name], ["State", badge(d.state)], ["Zone", d.zone], ["Instance type", d.instanceType],
        ["Desired nodes", String(d.desired)], ["Failed nodes", d.recreate ? "are replaced" : "stay"],
        ["Description", d.description], ["Created (UTC)", when(d.created)],
        ["Notifications", d.notifications.map((n) => `${n.topic}: ${n.events.join(", ")}`).join("; ") || "none"],
      ]);
      const desired = document.querySelector("input[name=desired]");
      if (!sized && desired) { desired.value = d.desired; sized = true; }
      fill($("#nodes tbody"), d.nodeList, (n) => row(
        n.ComputeNodeId, n.ComputeNodeInstanceId, n.InstanceType, badge(n.ComputeNodeState), num(n.Cpu), num(n.Mem),
        when(n.ResourceCreatedTime), n.BusyWith,
        el("td", { class: "nowrap" },
          el("button", {
            type: "button", class: "danger", "data-post": api + "/nodes/" + enc(n.ComputeNodeId) + "/terminate",
            "data-confirm": `Terminate node ${n.ComputeNodeId}?`,
          }, "Terminate"),
          el("output", { class: "result" })),
      ), 9, "no nodes");
      fill($("#timeline tbody"), d.timeline, (e) => eventRow(e, true), 7, "no events yet");
      fill($("#activities tbody"), d.activities, (a) => row(
        a.ActivityId, a.ComputeNodeId, a.ComputeNodeActivityType, el("td", { class: "wrap" }, a.Cause), badge(a.ActivityState),
        when(a.StartTime), when(a.EndTime),
      ), 7, "no activities");
    });
  }

  // -- the Batch forms ----------------------------------------------------------------------------

  async function batchNew() {
    let options;
    try {
      options = await getJSON("/console/api/batch/options");
    } catch (e) {
      document.querySelectorAll("form output").forEach((o) => report(o, e.message, true));
      return;
    }
    const zones = Object.keys(options.zones);
    for (const form of document.querySelectorAll("#job-form, #env-form")) {
      const zone = form.querySelector("select.zones");
      const types = form.querySelector("select.types");
      zone.replaceChildren(...zones.map((z) => el("option", { value: z }, z)));
      const preferred = zones.find((z) => options.zones[z].includes("S5.MEDIUM4"));
      if (preferred) zone.value = preferred;
      const fillTypes = () => {
        const offered = [...(options.zones[zone.value] || []), ...options.faultTypes];
        types.replaceChildren(...offered.map((t) => el("option", { value: t }, t + (t.startsWith("SIM.") ? " (fault)" : ""))));
        if (offered.includes("S5.MEDIUM4")) types.value = "S5.MEDIUM4";
      };
      zone.addEventListener("change", fillTypes);
      fillTypes();
      form.querySelector("select.topics").append(...options.topics.map((t) => el("option", { value: t }, t)));
      const box = form.querySelector("div.events");
      box.replaceChildren(...options[box.dataset.scope].map((name) => el("label", { class: "check" },
        el("input", { type: "checkbox", name: "event", value: name }), name)));
      const envs = form.querySelector("select.envs");
      if (envs) {
        envs.append(...options.envs.map((e) => el("option", { value: e.id }, `${e.id} ${e.name} (${e.zone})`)));
        // A named environment brings its own instance type (and zone).
        envs.addEventListener("change", () => {
          types.disabled = Boolean(envs.value);
          const chosen = options.envs.find((e) => e.id === envs.value);
          if (chosen && zones.includes(chosen.zone)) zone.value = chosen.zone;
        });
      }
    }
  }

  const pages = { overview, queue, topic, job, env, batch_new: batchNew };
  if (pages[PAGE]) pages[PAGE]();
})();
