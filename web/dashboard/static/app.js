// Operator dashboard: local times, sortable tables, the meter chart. Everything reads without it.
(function () {
  "use strict";
  const pad = (n) => String(n).padStart(2, "0");

  function localise(root) {
    root.querySelectorAll("time[datetime]").forEach((el) => {
      const at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      el.textContent = `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ` +
        `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
    });
  }

  function cellValue(row, index) {
    const cell = row.children[index];
    if (!cell) return "";
    const raw = cell.dataset.value ?? cell.textContent.trim();
    const num = Number(raw);
    return raw !== "" && !isNaN(num) ? num : raw.toLowerCase();
  }

  function sortBy(th) {
    const table = th.closest("table");
    const body = table.tBodies[0];
    const index = Array.from(th.parentNode.children).indexOf(th);
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cellValue(a, index), y = cellValue(b, index);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach((row) => body.appendChild(row));
  }

  function chart(root) {
    const holder = root.querySelector ? root.querySelector("#chart") : null;
    const source = document.getElementById("chart-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
    const data = JSON.parse(source.textContent);
    holder.textContent = "";
    if (data.t.length === 0) {
      holder.textContent = "No energy or power readings yet.";
      return;
    }
    const opts = {
      width: Math.max(holder.clientWidth - 32, 260), height: 300,
      scales: { x: { time: true }, kwh: {}, kw: {} },
      series: [
        {},
        { label: "Energy (kWh)", scale: "kwh", stroke: "#1f5fbf", width: 2, spanGaps: true },
        { label: "Power (kW)", scale: "kw", stroke: "#c2410c", width: 2, spanGaps: true },
      ],
      axes: [{}, { scale: "kwh", label: "kWh" }, { scale: "kw", side: 1, label: "kW", grid: { show: false } }],
    };
    new uPlot(opts, [data.t, data.energy, data.power], holder);
  }

  function refresh(root) { localise(root); chart(root); }
  // A live swap keeps the operator's chosen order: the table's sorted column is sorted again.
  const sorted = {};

  document.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (!th) return;
    sortBy(th);
    const table = th.closest("table");
    if (table.id) sorted[table.id] = [th.cellIndex, th.getAttribute("aria-sort")];
  });
  document.addEventListener("DOMContentLoaded", () => refresh(document));
  document.addEventListener("htmx:afterSettle", (event) => {
    refresh(event.detail.elt);
    for (const [id, [index, order]] of Object.entries(sorted)) {
      const th = document.querySelector(`#${CSS.escape(id)} thead th:nth-child(${index + 1})`);
      if (!th || th.getAttribute("aria-sort") === order) continue;
      th.setAttribute("aria-sort", order === "ascending" ? "descending" : "ascending");
      sortBy(th);
    }
  });
})();
