// Floodgate status page: one server-sent event per second carries a
// Snapshot (see capstone/ops/snapshot.go); this script only draws it.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const HISTORY = 120;
  const inHist = [], outHist = [];
  let prev = null;

  function num(v) {
    if (v >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (v >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (v >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return Math.round(v).toLocaleString("en-US");
  }
  function bytes(v) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i === 0 ? Math.round(v) : v.toFixed(1)) + " " + u[i];
  }
  function set(id, text) { const e = $(id); if (e.textContent !== text) e.textContent = text; }
  function total(counts) { return (counts || []).reduce((a, c) => a + c.value, 0); }

  function table(id, counts) {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    if (!counts || counts.length === 0) {
      const td = body.insertRow().insertCell();
      td.className = "muted"; td.textContent = "none";
      return;
    }
    for (const c of counts) {
      const row = body.insertRow();
      const th = document.createElement("th"); th.textContent = c.label; row.appendChild(th);
      const td = row.insertCell(); td.className = "n"; td.textContent = num(c.value);
    }
  }

  function chart(s) {
    inHist.push(s.inPerSec); outHist.push(s.outPerSec);
    if (inHist.length > HISTORY) { inHist.shift(); outHist.shift(); }
    const max = Math.max(1, ...inHist, ...outHist);
    const pts = (h) => h.map((v, i) => ((HISTORY - h.length + i) * 600 / (HISTORY - 1)).toFixed(1) + "," + (115 - v / max * 110).toFixed(1)).join(" ");
    $("line-in").setAttribute("points", pts(inHist));
    $("line-out").setAttribute("points", pts(outHist));
    set("rate-max", num(max));
  }

  function draw(s) {
    set("connections", num(s.connections));
    set("accepted", num(s.connectionsAccepted));
    set("refused-total", num(total(s.connectionsRefused)));
    set("in-rate", num(s.inPerSec));
    set("out-rate", num(s.outPerSec));
    set("in-total", num(s.messagesIn));
    set("out-total", num(s.messagesOut));
    set("bytes-in-rate", bytes(s.bytesInPerSec));
    set("bytes-out-rate", bytes(s.bytesOutPerSec));
    set("bytes-per-conn", s.connections > 0 ? bytes(s.bytesPerConnection) : "–");
    set("memory", bytes(s.memoryBytes));
    set("goroutines", num(s.goroutines));
    set("queue-depth", num(s.queueDepth));
    // The tile turns red while drops are happening, not forever after one.
    const drops = total(s.drops);
    const fresh = prev ? Math.max(0, drops - total(prev.drops)) : drops;
    set("drops-total", num(drops));
    set("drops-now", num(fresh));
    $("drops-tile").classList.toggle("alert", fresh > 0);
    document.title = "Floodgate · " + num(s.connections) + " conn · " + num(s.inPerSec) + " in/s";
    prev = s;
    set("sink-queue", num(s.sinkQueueDepth) + " records");
    set("sink-spool", num(s.sinkSpillDepth) + " records");
    set("sessions", num(s.sessions));
    set("subscriptions", num(s.subscriptions));
    set("retained", num(s.retained));
    table("drops", s.drops);
    table("refused", s.connectionsRefused);
    table("limits", s.limiterRejections);
    const ul = $("breakers");
    ul.replaceChildren();
    for (const b of s.breakers || []) {
      const li = document.createElement("li");
      li.className = b.state;
      li.dataset.breaker = b.name;
      const n = document.createElement("span"); n.textContent = "breaker " + b.name;
      const st = document.createElement("span"); st.textContent = b.state;
      li.append(n, st);
      ul.appendChild(li);
    }
    chart(s);
    set("updated", new Date(s.time).toLocaleTimeString());
    document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
  }

  // ?max=N asks the server for N snapshots only (for headless browsers).
  const max = Number(new URLSearchParams(location.search).get("max")) || 0;
  const link = $("link");
  const es = new EventSource("/status/events" + (max > 0 ? "?max=" + max : ""));
  es.addEventListener("snapshot", (e) => {
    link.className = "pill ok"; link.textContent = "live";
    draw(JSON.parse(e.data));
  });
  es.onerror = () => {
    if (max > 0 && Number(document.body.dataset.updates) >= max) {
      es.close();
      link.className = "pill wait"; link.textContent = "paused after " + max + " updates";
      return;
    }
    link.className = "pill bad"; link.textContent = "disconnected, retrying";
  };
})();
