// Triage in the page: mark each finding real or not a problem, filter by mark, and export the
// marks as a lockorder-lint baseline (the format --write-baseline writes) or as noqa comments.
// Marks are kept in the browser's local storage for this report; nothing leaves the page.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var storageKey = "lockorder-lint-marks:" + data.report;
  var marks = {};
  try {
    marks = JSON.parse(window.localStorage.getItem(storageKey) || "{}") || {};
  } catch (e) {
    marks = {};  // storage refused (a sandboxed file:// page): marks last as long as the page
  }
  var byId = {};
  data.findings.forEach(function (f) { byId[f.id] = f; });

  function save() {
    try { window.localStorage.setItem(storageKey, JSON.stringify(marks)); } catch (e) { /* see above */ }
  }

  function show(id) {
    var article = document.getElementById(id);
    if (!article) { return; }
    var mark = marks[id] || "";
    article.classList.toggle("mark-real", mark === "real");
    article.classList.toggle("mark-fp", mark === "fp");
    article.dataset.mark = mark;
    var input = article.querySelector('input[value="' + (mark || "none") + '"]');
    if (input) { input.checked = true; }
  }

  function counts() {
    var real = 0, fp = 0;
    data.findings.forEach(function (f) {
      if (marks[f.id] === "real") { real += 1; } else if (marks[f.id] === "fp") { fp += 1; }
    });
    document.getElementById("count-real").textContent = String(real);
    document.getElementById("count-fp").textContent = String(fp);
    document.getElementById("count-open").textContent = String(data.findings.length - real - fp);
  }

  function applyFilter() {
    var wanted = document.getElementById("filter").value;
    document.querySelectorAll("article.finding").forEach(function (article) {
      var mark = article.dataset.mark || "";
      var keep = wanted === "all" || (wanted === "open" ? mark === "" : mark === wanted);
      article.classList.toggle("hidden-by-filter", !keep);
    });
  }

  document.querySelectorAll("article.finding input[type=radio]").forEach(function (input) {
    input.addEventListener("change", function () {
      var id = input.closest("article").id;
      if (input.value === "none") { delete marks[id]; } else { marks[id] = input.value; }
      save(); show(id); counts(); applyFilter();
    });
  });
  document.getElementById("filter").addEventListener("change", applyFilter);

  function chosen() {
    var scope = document.getElementById("export-scope").value;
    return data.findings.filter(function (f) {
      var mark = marks[f.id] || "";
      if (scope === "fp") { return mark === "fp"; }
      if (scope === "marked") { return mark !== ""; }
      return true;
    });
  }

  function compareKeys(a, b) {
    var fields = ["path", "code", "function", "statement"];
    for (var i = 0; i < fields.length; i += 1) {
      if (a[fields[i]] < b[fields[i]]) { return -1; }
      if (a[fields[i]] > b[fields[i]]) { return 1; }
    }
    return 0;
  }

  function baselineText(findings) {
    var entries = {};
    findings.forEach(function (f) {
      var k = JSON.stringify([f.key.path, f.key.code, f.key.function, f.key.statement]);
      if (!entries[k]) {
        entries[k] = { path: f.key.path, code: f.key.code, "function": f.key.function,
                       statement: f.key.statement, count: 0 };
      }
      entries[k].count += 1;
    });
    var list = Object.keys(entries).map(function (k) { return entries[k]; }).sort(compareKeys);
    return JSON.stringify({ "lockorder-lint-baseline": data.baselineVersion, entries: list }, null, 2) + "\n";
  }

  function noqaText(findings) {
    var lines = {};
    var order = [];
    findings.forEach(function (f) {
      var where = f.path + ":" + f.line;
      if (!lines[where]) { lines[where] = { codes: [], source: f.source }; order.push(where); }
      if (lines[where].codes.indexOf(f.code) < 0) { lines[where].codes.push(f.code); }
    });
    return order.map(function (where) {
      var entry = lines[where];
      return where + ": append  # noqa: " + entry.codes.sort().join(",") + "\n    " + entry.source.trim();
    }).join("\n") + (order.length ? "\n" : "");
  }

  function offer(text, name, type) {
    var output = document.getElementById("export-output");
    output.value = text;
    var link = document.getElementById("export-download");
    link.href = "data:" + type + ";charset=utf-8," + encodeURIComponent(text);
    link.download = name;
    link.hidden = false;
    link.textContent = "Download " + name;
  }

  document.getElementById("export-baseline").addEventListener("click", function () {
    offer(baselineText(chosen()), "lockorder-baseline.json", "application/json");
  });
  document.getElementById("export-noqa").addEventListener("click", function () {
    offer(noqaText(chosen()), "lockorder-noqa.txt", "text/plain");
  });

  document.querySelectorAll("#lock-graph .node").forEach(function (node) {
    function go() {
      var target = document.getElementById("table-" + node.dataset.table);
      if (target) { target.scrollIntoView(); }
    }
    node.addEventListener("click", go);
    node.addEventListener("keydown", function (event) { if (event.key === "Enter") { go(); } });
  });

  data.findings.forEach(function (f) { show(f.id); });
  counts();
  applyFilter();
  document.body.dataset.ready = "true";
}());
