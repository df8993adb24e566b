/* journey5a HTML report: draws the charts from the report's JSON document (#report-data) with
 * Apache ECharts (inlined before this script). Every figure comes from that document; nothing
 * is computed here but shares for the cohort grid and unit conversions for display.
 * Contract (reports/html.py): each .chart gets data-drawn = number of SVG elements drawn;
 * <body> gets data-ready="true" at the end and data-errors lists any error. */
(function () {
  "use strict";
  var doc = JSON.parse(document.getElementById("report-data").textContent);
  var S = doc.sections;
  var STAGES = ["aware", "appeal", "ask", "act", "advocate"];
  var STAGE_COLORS = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#9a60b4"];
  var ZONE_COLORS = {own: "#5470c6", other: "#3ba272", outer: "#fc8452"};
  var errors = window.__reportErrors || [];

  function fail(where, err) {
    errors.push(where + ": " + (err && err.message ? err.message : String(err)));
    document.body.setAttribute("data-errors", errors.join(" | "));
  }

  function fmtInt(n) { return n == null ? "n/a" : Number(n).toLocaleString("en-US"); }
  function fmtRatio(x) { return x == null ? "n/a" : x.toFixed(3); }
  function fmtShare(x) { return x == null ? "n/a" : (100 * x).toFixed(1) + "%"; }
  function fmtDuration(ms) {
    if (ms == null) return "n/a";
    var s = ms / 1000;
    if (s < 1) return ms + "ms";
    if (s < 60) return Math.round(s) + "s";
    var m = Math.floor(s / 60), sec = Math.floor(s) % 60;
    if (m < 60) return m + "m " + sec + "s";
    var h = Math.floor(m / 60); m = m % 60;
    if (h < 24) return h + "h " + m + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function weekLabel(row, key) { return row[key] + (row.partial ? " *" : ""); }
  function rows(key) { var s = S[key]; return Array.isArray(s) ? s : null; }

  function draw(name, build) {
    var el = document.getElementById("chart-" + name);
    if (!el) return;
    try {
      var option = build();
      if (option === null) {
        el.textContent = "not available on this server (see the figures below)";
        el.setAttribute("data-drawn", "unavailable");
        return;
      }
      option.animation = false;
      option.textStyle = {fontFamily: "system-ui, sans-serif"};
      var chart = echarts.init(el, null, {renderer: "svg"});
      chart.setOption(option);
      window.addEventListener("resize", function () { chart.resize(); });
      el.setAttribute("data-drawn", String(el.querySelectorAll("svg path, svg rect, svg text").length));
    } catch (err) {
      fail(name, err);
    }
  }

  var grid = {left: 56, right: 20, top: 48, bottom: 40, containLabel: true};
  var tooltip = {trigger: "axis", axisPointer: {type: "shadow"}};

  if (!doc.no_data) {
    // The 5A path: entries per stage; the axis names the conversion into each stage.
    draw("path", function () {
      var counts = {};
      S.stage_entries.forEach(function (r) { counts[r.stage] = r.customers; });
      var into = {appeal: ["attraction", S.ratios.attraction], ask: ["curiosity", S.ratios.curiosity],
                  act: ["commitment", S.ratios.commitment], advocate: ["affinity", S.ratios.affinity]};
      return {
        tooltip: tooltip, grid: grid,
        xAxis: {type: "category", data: STAGES, axisLabel: {interval: 0, formatter: function (stage) {
          return into[stage] ? "{stage|" + stage + "}\n{ratio|" + into[stage][0] + " " + fmtRatio(into[stage][1]) + "}"
                             : "{stage|" + stage + "}\n{ratio|}";
        }, rich: {stage: {fontSize: 12, lineHeight: 16}, ratio: {fontSize: 10, lineHeight: 14, color: "#616e7c"}}}},
        yAxis: {type: "value", name: "customers"},
        series: [{type: "bar", name: "customers entering", barWidth: "55%",
                  data: STAGES.map(function (s, i) { return {value: counts[s] || 0, itemStyle: {color: STAGE_COLORS[i]}}; }),
                  label: {show: true, position: "top", formatter: function (p) { return fmtInt(p.value); }}}]
      };
    });

    // Conversion within the window (funnel conversion of the persons first seen in the period, line)
    // beside the period counts (customers entering each stage in the period, bars).
    draw("window", function () {
      var conv = rows("conversion_window");
      if (!conv) return null;
      var days = doc.window_days;
      return {
        tooltip: {trigger: "axis", formatter: function (ps) {
          var r = conv[ps[0].dataIndex];
          return r.stage + "<br>period count: " + fmtInt(r.entered_in_period) + " entered in the period" +
            "<br>funnel conversion: " + fmtInt(r.reached_within_window) + " of " + fmtInt(r.first_seen_in_period) +
            " first seen in the period within " + days + " days (" + fmtShare(r.window_conversion) + ")";
        }},
        legend: {top: 0}, grid: {left: 56, right: 20, top: 76, bottom: 40, containLabel: true},
        xAxis: {type: "category", data: conv.map(function (r) { return r.stage; })},
        yAxis: [{type: "value", name: "customers"},
                {type: "value", name: "conversion", min: 0, max: 1, axisLabel: {formatter: function (v) {
                  return Math.round(100 * v) + "%"; }}, splitLine: {show: false}}],
        series: [
          {type: "bar", name: "period count", color: "#9fb3c8",
           data: conv.map(function (r) { return r.entered_in_period; })},
          {type: "bar", name: "first seen in the period, reached within " + days + "d", color: "#5470c6",
           data: conv.map(function (r) { return r.reached_within_window; })},
          {type: "line", name: "conversion within " + days + "d", yAxisIndex: 1, color: "#ee6666", symbolSize: 7,
           data: conv.map(function (r) { return r.window_conversion; }),
           label: {show: true, position: "top", fontSize: 10, formatter: function (p) { return fmtShare(p.value); }}}
        ]
      };
    });

    // Breakdowns by first touch: PAR and BAR per group (bars), customers first seen through it (line).
    function firstTouch(name, key) {
      draw(name, function () {
        var groups = rows(key);
        if (!groups) return null;
        var label = function (r) { return r.first_touch || "(none)"; };
        return {
          tooltip: {trigger: "axis", axisPointer: {type: "shadow"}, formatter: function (ps) {
            var r = groups[ps[0].dataIndex];
            return label(r) + "<br>" + STAGES.map(function (s) { return s + " " + fmtInt(r[s]); }).join(" · ") +
              "<br>PAR " + fmtRatio(r.par) + " · BAR " + fmtRatio(r.bar) + "<br>attraction " + fmtRatio(r.attraction) +
              " · curiosity " + fmtRatio(r.curiosity) + " · commitment " + fmtRatio(r.commitment) +
              " · affinity " + fmtRatio(r.affinity);
          }},
          legend: {top: 0}, grid: grid,
          xAxis: {type: "category", data: groups.map(label),
                  axisLabel: {interval: 0, rotate: groups.length > 6 ? 30 : 0}},
          yAxis: [{type: "value", name: "ratio"}, {type: "value", name: "aware", splitLine: {show: false}}],
          series: [
            {type: "bar", name: "PAR (act / aware)", color: "#ee6666", data: groups.map(function (r) { return r.par; })},
            {type: "bar", name: "BAR (advocate / aware)", color: "#9a60b4", data: groups.map(function (r) { return r.bar; })},
            {type: "line", name: "aware (first seen)", yAxisIndex: 1, color: "#5470c6", symbolSize: 6,
             data: groups.map(function (r) { return r.aware; })}
          ]
        };
      });
    }
    firstTouch("first-channel", "first_touch_channel");
    firstTouch("first-influence", "first_touch_influence");
    firstTouch("first-campaign", "first_touch_campaign");

    // How people move: a Sankey of every from -> to move (skips in orange).
    draw("flows", function () {
      var flows = rows("flows");
      if (!flows) return null;
      var name = function (stage) { return stage === "none" ? "new" : stage; };
      var depth = {none: 0, aware: 1, appeal: 2, ask: 3, act: 4, advocate: 5};
      var used = {};
      var links = flows.filter(function (r) { return r.customers > 0; }).map(function (r) {
        used[r.from_stage] = used[r.to_stage] = true;
        return {source: name(r.from_stage), target: name(r.to_stage), value: r.customers, kind: r.kind,
                lineStyle: {color: r.kind === "skip" ? "#f08c00" : "gradient", opacity: r.kind === "skip" ? 0.55 : 0.35}};
      });
      var nodes = ["none"].concat(STAGES).filter(function (s) { return used[s]; }).map(function (s) {
        var i = STAGES.indexOf(s);
        return {name: name(s), depth: depth[s], itemStyle: {color: i < 0 ? "#9fb3c8" : STAGE_COLORS[i]}};
      });
      return {
        tooltip: {trigger: "item", formatter: function (p) {
          if (p.dataType === "edge") return p.data.source + " → " + p.data.target + " (" + p.data.kind + "): " + fmtInt(p.data.value);
          return p.name + ": " + fmtInt(p.value);
        }},
        series: [{type: "sankey", left: 10, right: 110, top: 10, bottom: 10, nodeAlign: "left",
                  layoutIterations: 0, data: nodes, links: links, emphasis: {focus: "adjacency"},
                  label: {fontSize: 11, backgroundColor: "rgba(255,255,255,0.85)", padding: [1, 3], borderRadius: 3,
                          formatter: function (p) { return p.name + " " + fmtInt(p.value); }}}]
      };
    });

    // Weekly entries per stage (partial weeks marked *).
    draw("weekly", function () {
      var weeks = rows("stage_entries_weekly");
      if (!weeks) return null;
      return {
        tooltip: {trigger: "axis"}, legend: {top: 0}, grid: grid,
        xAxis: {type: "category", data: weeks.map(function (r) { return weekLabel(r, "week"); })},
        yAxis: {type: "value", name: "customers"},
        series: STAGES.map(function (s, i) {
          return {type: "line", name: s, symbolSize: 6, color: STAGE_COLORS[i],
                  data: weeks.map(function (r) { return r[s]; })};
        })
      };
    });

    // Influence zones per stage: stacked bars.
    draw("influence", function () {
      var mix = rows("influence_mix");
      if (!mix) return null;
      return {
        tooltip: tooltip, legend: {top: 0}, grid: grid,
        xAxis: {type: "category", data: mix.map(function (r) { return r.stage; })},
        yAxis: {type: "value", name: "customers"},
        series: ["own", "other", "outer"].map(function (zone) {
          return {type: "bar", stack: "zone", name: zone, color: ZONE_COLORS[zone],
                  data: mix.map(function (r) { return r[zone]; })};
        })
      };
    });

    // Channels: entries per stage, one group per channel.
    draw("channels", function () {
      var mix = rows("channel_mix");
      if (!mix) return null;
      return {
        tooltip: tooltip, legend: {top: 0}, grid: grid,
        xAxis: {type: "category", data: mix.map(function (r) { return r.channel || "(none)"; }),
                axisLabel: {interval: 0, rotate: mix.length > 6 ? 30 : 0}},
        yAxis: {type: "value", name: "customers"},
        series: STAGES.map(function (s, i) {
          return {type: "bar", name: s, color: STAGE_COLORS[i], data: mix.map(function (r) { return r[s]; })};
        })
      };
    });

    // Weekly cohort grid: share of each first-seen week's customers that entered each later stage.
    draw("cohorts", function () {
      var cohorts = rows("cohorts_weekly");
      if (!cohorts) return null;
      var later = STAGES.slice(1);
      var data = [];
      cohorts.forEach(function (r, y) {
        later.forEach(function (s, x) {
          data.push([x, y, r.customers ? r[s] / r.customers : "-", r[s], r.customers]);
        });
      });
      return {
        tooltip: {formatter: function (p) {
          var r = cohorts[p.value[1]];
          return "cohort " + r.cohort_week + (r.partial ? " (partial week)" : "") + "<br>" + later[p.value[0]] + ": " +
            fmtInt(p.value[3]) + " of " + fmtInt(p.value[4]) +
            (p.value[4] ? " (" + (100 * p.value[2]).toFixed(1) + "%)" : "");
        }},
        grid: {left: 90, right: 20, top: 10, bottom: 70},
        xAxis: {type: "category", data: later, splitArea: {show: true}},
        yAxis: {type: "category", inverse: true,
                data: cohorts.map(function (r) { return weekLabel(r, "cohort_week") + " (" + fmtInt(r.customers) + ")"; })},
        visualMap: {min: 0, max: 1, dimension: 2, calculable: false, orient: "horizontal", left: "center", bottom: 0,
                    itemHeight: 160, text: ["100%", "0%"], inRange: {color: ["#f0f4f8", "#2680c2"]}},
        series: [{type: "heatmap", data: data,
                  label: {show: cohorts.length <= 16, fontSize: 10, formatter: function (p) {
                    return typeof p.value[2] === "number" ? (100 * p.value[2]).toFixed(0) + "%" : "";
                  }}}]
      };
    });

    // Time to convert: quartiles and p90, in hours on the axis and as durations in the tooltip.
    draw("convert", function () {
      var steps = rows("time_to_convert");
      if (!steps) return null;
      var levels = ["p25_ms", "p50_ms", "p75_ms", "p90_ms"];
      return {
        tooltip: {trigger: "axis", axisPointer: {type: "shadow"}, formatter: function (ps) {
          return ps.map(function (p) {
            var step = steps[p.seriesIndex];
            return p.marker + step.step + " (" + fmtInt(step.customers) + " customers) " + p.name + ": " +
              fmtDuration(step[levels[p.dataIndex]]);
          }).join("<br>");
        }},
        legend: {top: 0}, grid: grid,
        xAxis: {type: "category", data: levels.map(function (l) { return l.replace("_ms", ""); })},
        yAxis: {type: "value", name: "hours"},
        series: steps.map(function (step, i) {
          return {type: "bar", name: step.step + " (" + fmtInt(step.customers) + ")", color: ["#5470c6", "#9a60b4"][i % 2],
                  data: levels.map(function (l) { return step[l] == null ? null : step[l] / 3600000; }),
                  label: {show: true, position: "top", fontSize: 10, formatter: function (p) {
                    return fmtDuration(step[levels[p.dataIndex]]);
                  }}};
        })
      };
    });

    // Referral reach: customers each top advocate brought; the reach figures in the subtitle.
    draw("referrals", function () {
      var top = rows("top_advocates");
      var reach = S.referral_reach;
      if (!top || reach.unavailable) return null;
      var shown = top.slice().reverse();
      return {
        title: {text: fmtInt(reach.referred) + " referred by " + fmtInt(reach.referring_advocates) + " of " +
                      fmtInt(reach.advocates) + " advocates · viral coefficient " + fmtRatio(reach.viral_coefficient),
                textStyle: {fontSize: 12, fontWeight: "normal"}, left: 0, top: 0},
        tooltip: tooltip, grid: {left: 20, right: 40, top: 36, bottom: 30, containLabel: true},
        xAxis: {type: "value", name: "customers brought", nameLocation: "middle", nameGap: 24, minInterval: 1},
        yAxis: {type: "category", data: shown.map(function (r) { return r.advocate; })},
        series: [{type: "bar", color: "#3ba272", data: shown.map(function (r) { return r.referred; }),
                  label: {show: true, position: "right"}}]
      };
    });
  }
  document.body.setAttribute("data-ready", "true");
})();
