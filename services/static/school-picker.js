// The duty-log form's school picker: a text filter and "select the whole town" buttons.
// Loaded as a file because the pages' CSP allows no inline script; without it the plain
// checkbox list still works.
(function () {
  "use strict";
  var list = document.querySelector(".school-list");
  var filter = document.getElementById("school-filter");
  if (!list || !filter) { return; }
  filter.hidden = false;
  document.getElementById("school-filter-label").hidden = false;
  var towns = list.querySelectorAll("fieldset.town");
  function apply() {
    var q = filter.value.trim().toLowerCase();
    towns.forEach(function (town) {
      var townName = town.querySelector("legend").textContent.toLowerCase();
      var shown = 0;
      town.querySelectorAll(".checks label").forEach(function (label) {
        var hit = !q || townName.indexOf(q) >= 0 || label.textContent.toLowerCase().indexOf(q) >= 0;
        label.hidden = !hit;
        if (hit) { shown += 1; }
      });
      town.hidden = shown === 0;
    });
  }
  filter.addEventListener("input", apply);
  towns.forEach(function (town) {
    var legend = town.querySelector("legend");
    var boxes = town.querySelectorAll('input[type="checkbox"]');
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary small";
    function label() {
      var all = Array.prototype.every.call(boxes, function (b) { return b.checked; });
      button.textContent = all ? "取消全选" : "全选本镇";
      button.setAttribute("aria-label", (all ? "取消全选" : "全选") + legend.textContent.trim() + "的学校");
    }
    button.addEventListener("click", function () {
      var visible = Array.prototype.filter.call(boxes, function (b) { return !b.closest("label").hidden; });
      var all = visible.every(function (b) { return b.checked; });
      visible.forEach(function (b) { b.checked = !all; });
      label();
    });
    boxes.forEach(function (b) { b.addEventListener("change", label); });
    label();
    legend.appendChild(document.createTextNode(" "));
    legend.appendChild(button);
  });
})();
