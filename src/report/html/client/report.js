/*
 * reaper's report page script: the findings table (sort, filter, pages) and, on the
 * daemon's live page, fresh data every few seconds without a reload. It runs inline in
 * the standalone file (allowed by its hash) and as /ui/report.js on the daemon. It
 * requests nothing in a standalone file; on the live page only its own origin's data URL.
 * Text goes into the page through textContent only; the live page's sections arrive as
 * markup rendered (and escaped) by the daemon.
 */
(function () {
  'use strict';

  var PAGE_SIZE = 50;
  var COLUMNS = { resource: 0, id: 1, status: 2, reason: 3, owner: 4, age: 5, bytes: 6 };
  var RANK = { orphaned: 0, expired: 1, unknown: 2, protected: 3, young: 4, live: 5 };
  var body = document.body;

  function formatSeconds(s) {
    if (s === null) return '—';
    if (s < 60) return Math.round(s) + 's';
    if (s < 3600) return (s / 60).toFixed(1) + 'm';
    if (s < 86400) return (s / 3600).toFixed(1) + 'h';
    return (s / 86400).toFixed(1) + 'd';
  }

  function formatBytes(b) {
    if (b === null) return '—';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var v = b;
    var u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return u === 0 ? v + ' B' : v.toFixed(1) + ' ' + units[u];
  }

  var table = {
    rows: [],
    total: 0,
    omitted: 0,
    q: '',
    status: '',
    resource: '',
    sortKey: null,
    sortDir: 1,
    page: 0,
  };

  function section() {
    return document.getElementById('findings');
  }

  function compare(key) {
    var i = COLUMNS[key];
    if (key === 'age' || key === 'bytes') {
      return function (a, b) {
        var x = a[i];
        var y = b[i];
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x - y) * table.sortDir;
      };
    }
    if (key === 'status') {
      return function (a, b) {
        return (RANK[a[i]] - RANK[b[i]]) * table.sortDir;
      };
    }
    return function (a, b) {
      var x = a[i] === null ? '' : a[i];
      var y = b[i] === null ? '' : b[i];
      return (x < y ? -1 : x > y ? 1 : 0) * table.sortDir;
    };
  }

  function visibleRows() {
    var q = table.q.toLowerCase();
    var rows = table.rows.filter(function (r) {
      if (table.status && r[2] !== table.status) return false;
      if (table.resource && r[0] !== table.resource) return false;
      if (!q) return true;
      return [r[0], r[1], r[3], r[4]].some(function (v) {
        return v !== null && v.toLowerCase().indexOf(q) !== -1;
      });
    });
    if (table.sortKey) rows.sort(compare(table.sortKey));
    return rows;
  }

  function cell(text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  function render() {
    var root = section();
    if (!root) return;
    var tbody = root.querySelector('tbody');
    var rows = visibleRows();
    var pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
    if (table.page >= pages) table.page = pages - 1;
    var start = table.page * PAGE_SIZE;
    var shown = rows.slice(start, start + PAGE_SIZE);
    var fragment = document.createDocumentFragment();
    shown.forEach(function (r) {
      var tr = document.createElement('tr');
      tr.appendChild(cell(r[0]));
      tr.appendChild(cell(r[1], 'id'));
      var status = cell('', 'status');
      var badge = document.createElement('span');
      badge.className = 'badge b-' + r[2];
      badge.textContent = r[2];
      status.appendChild(badge);
      tr.appendChild(status);
      tr.appendChild(cell(r[3] === null ? '—' : r[3]));
      tr.appendChild(cell(r[4] === null ? '(no owner)' : r[4], 'owner'));
      tr.appendChild(cell(formatSeconds(r[5]), 'num'));
      tr.appendChild(cell(formatBytes(r[6]), 'num'));
      fragment.appendChild(tr);
    });
    tbody.replaceChildren(fragment);
    var filtered = rows.length !== table.rows.length;
    var text = rows.length === 0 ? 'No finding matches.' : 'Findings ' + (start + 1).toLocaleString('en-US') + '–' + (start + shown.length).toLocaleString('en-US') + ' of ' + rows.length.toLocaleString('en-US');
    if (filtered) text += ' (filtered from ' + table.rows.length.toLocaleString('en-US') + ')';
    root.querySelector('.pager .status').textContent = text;
    root.querySelector('[data-page="prev"]').disabled = table.page === 0;
    root.querySelector('[data-page="next"]').disabled = table.page >= pages - 1;
    root.querySelectorAll('th[data-sort]').forEach(function (th) {
      var key = th.getAttribute('data-sort');
      th.setAttribute('aria-sort', key === table.sortKey ? (table.sortDir === 1 ? 'ascending' : 'descending') : 'none');
    });
  }

  function fillResources() {
    var root = section();
    if (!root) return;
    var select = root.querySelector('select[name="resource"]');
    var names = Array.from(
      new Set(
        table.rows.map(function (r) {
          return r[0];
        }),
      ),
    ).sort();
    var current = select.value;
    while (select.options.length > 1) select.remove(1);
    names.forEach(function (name) {
      var option = document.createElement('option');
      option.value = name;
      option.textContent = name;
      select.appendChild(option);
    });
    select.value = names.indexOf(current) === -1 ? '' : current;
    table.resource = select.value;
  }

  function setFindings(payload) {
    table.rows = payload.rows || [];
    table.total = payload.total || 0;
    table.omitted = payload.omitted || 0;
    fillResources();
    render();
  }

  function wireTable() {
    var root = section();
    if (!root || !root.querySelector('table.findings')) return false;
    var form = root.querySelector('form.filters');
    form.addEventListener('submit', function (event) {
      event.preventDefault();
    });
    form.addEventListener('input', function () {
      table.q = form.elements.q.value;
      table.status = form.elements.status.value;
      table.resource = form.elements.resource.value;
      table.page = 0;
      render();
    });
    root.querySelectorAll('th[data-sort] button').forEach(function (button) {
      button.addEventListener('click', function () {
        var key = button.parentElement.getAttribute('data-sort');
        if (table.sortKey === key) table.sortDir = -table.sortDir;
        else {
          table.sortKey = key;
          // Numbers read largest first; text A to Z.
          table.sortDir = key === 'age' || key === 'bytes' ? -1 : 1;
        }
        table.page = 0;
        render();
      });
    });
    root.querySelector('[data-page="prev"]').addEventListener('click', function () {
      table.page = Math.max(0, table.page - 1);
      render();
    });
    root.querySelector('[data-page="next"]').addEventListener('click', function () {
      table.page++;
      render();
    });
    return true;
  }

  // ---------------------------------------------------------------- live page

  function swap(id, html) {
    var el = document.getElementById(id);
    if (!el) return;
    var open = Array.from(el.querySelectorAll('details[open]')).map(function (d) {
      return d.closest('section') ? d.closest('section').id : '';
    });
    el.innerHTML = html;
    open.forEach(function (sectionId) {
      var details = sectionId && el.querySelector('#' + sectionId + ' details');
      if (details) details.open = true;
    });
  }

  function live() {
    var url = body.getAttribute('data-refresh-url');
    var seconds = Number(body.getAttribute('data-refresh-seconds')) || 10;
    var state = document.querySelector('.live-state');
    function say(text) {
      if (state) state.textContent = text;
    }
    function tick() {
      fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } })
        .then(function (response) {
          if (response.status === 401) {
            return response.json().then(function (answer) {
              say('Signed out: the session ended.');
              window.location.assign(answer.signIn || 'sign-in');
              return null;
            });
          }
          if (!response.ok) throw new Error('the daemon answered ' + response.status);
          return response.json();
        })
        .then(function (data) {
          if (!data) return;
          swap('report-header', data.header);
          swap('live-sections', data.live);
          swap('report-sections', data.report);
          setFindings(data.findings);
          say('Live: updated ' + new Date(data.at).toLocaleTimeString('en-GB', { timeZone: 'UTC' }) + ' UTC; refreshes every ' + seconds + 's');
          setTimeout(tick, seconds * 1000);
        })
        .catch(function (error) {
          say('Live: could not refresh (' + error.message + '); trying again in ' + seconds + 's');
          setTimeout(tick, seconds * 1000);
        });
    }
    tick();
  }

  function start() {
    var mode = body.getAttribute('data-mode');
    if (!wireTable()) return;
    if (mode === 'file') {
      var data = document.getElementById('reaper-findings');
      setFindings(JSON.parse(data.textContent));
    } else if (mode === 'live') {
      live();
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
