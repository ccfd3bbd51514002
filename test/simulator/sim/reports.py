"""Reports: the report templates, report generation on the simulator clock,
and the files a report downloads as.  Routes: GET /report_templates,
GET|POST /reports, GET|DELETE /reports/{report_id} and
GET /reports/download/{descriptor}, as the spec (test/contract/
acunetix-api.yaml) describes them; also the checks of
PUT /_sim/report_templates.

The spec gives a Report's status only as a string: the statuses (queued,
processing, completed, failed) and the built-in templates' ids and names
come from public vendor clients, not the spec.  A report is queued for
REPORT_QUEUED units, processing until REPORT_DONE units, then ends as the
config's report_outcome said when it was created.

It must never be kinder than the spec: a report is downloadable only once
completed and only while it exists (any other descriptor is 404); the
files it serves are deterministic (the same report gives the same bytes)
and never carry a token.

Part of invicti_sim (see ../invicti_sim.py and ../README.md)."""

import html
import time

from .httpserver import ApiError, Response, json_response
from .model import SEVERITY_KEYS, is_uuid, iso, random_uuid
from .paging import paginate, parse_no_filter

STANDARD, COMPLIANCE = "Standard Reports", "Compliance Reports"
# Acunetix's built-in templates, ids as public vendor clients hard-code them.
REPORT_TEMPLATES = [
    ("11111111-1111-1111-1111-111111111111", "Developer", STANDARD),
    ("11111111-1111-1111-1111-111111111112", "Quick", STANDARD),
    ("11111111-1111-1111-1111-111111111113", "Executive Summary", STANDARD),
    ("11111111-1111-1111-1111-111111111114", "HIPAA", STANDARD),
    ("11111111-1111-1111-1111-111111111115", "Affected Items", STANDARD),
    ("11111111-1111-1111-1111-111111111116", "CWE 2011", COMPLIANCE),
    ("11111111-1111-1111-1111-111111111117", "ISO 27001", COMPLIANCE),
    ("11111111-1111-1111-1111-111111111118", "NIST SP800 53", COMPLIANCE),
    ("11111111-1111-1111-1111-111111111119", "OWASP Top 10 2013", COMPLIANCE),
    ("11111111-1111-1111-1111-111111111120", "PCI DSS 3.2", COMPLIANCE),
    ("11111111-1111-1111-1111-111111111121", "Sarbanes Oxley", COMPLIANCE),
    ("11111111-1111-1111-1111-111111111122", "STIG DISA", COMPLIANCE),
    ("11111111-1111-1111-1111-111111111123", "WASC Threat Classification", COMPLIANCE),
    ("11111111-1111-1111-1111-111111111124", "Scan Comparison", STANDARD),
    ("11111111-1111-1111-1111-111111111125", "OWASP Top 10 2017", COMPLIANCE),
]

# The spec's ReportSource.list_type enum, and the ones the simulator acts on.
LIST_TYPES = ("all_vulnerabilities", "targets", "groups", "scans", "scan_result",
              "vulnerabilities", "scan_vulnerabilities", "scan_pair", "scan_result_pair")
SIMULATED_LIST_TYPES = ("scans", "targets", "all_vulnerabilities")
REPORT_QUEUED = 1.0      # time units queued
REPORT_DONE = 3.0        # time units from creation to its end (completed or failed)
FILE_TYPES = {"html": b"text/html; charset=utf-8", "pdf": b"application/pdf"}


def builtin_templates():
    """The template store's start state, in the order GET lists it."""
    return [{"template_id": tid, "name": name, "group": group}
            for tid, name, group in REPORT_TEMPLATES]


def control_templates(specs):
    """PUT /_sim/report_templates {"templates": [...]} -> a new store;
    ValueError if bad.  group defaults to "Standard Reports"."""
    if not isinstance(specs, list):
        raise ValueError("templates: must be a list")
    seen, out = set(), []
    for spec in specs:
        if not isinstance(spec, dict) or set(spec) - {"template_id", "name", "group"}:
            raise ValueError("a template must be an object with template_id, name and "
                             "optional group")
        tid = spec.get("template_id")
        if not is_uuid(tid):
            raise ValueError(f"template_id must be a uuid string, got {tid!r}")
        tid = tid.lower()
        if tid in seen:
            raise ValueError(f"template_id {tid} appears twice")
        seen.add(tid)
        name, group = spec.get("name"), spec.get("group", STANDARD)
        if not isinstance(name, str) or not name or not isinstance(group, str):
            raise ValueError(f"template {tid}: name must be a non-empty string, "
                             "group a string")
        out.append({"template_id": tid, "name": name, "group": group})
    return out


def report_body_problems(body):
    """What is wrong with a body against the spec's NewReport schema."""
    if not isinstance(body, dict):
        return ["body: must be a JSON object"]
    problems = [f"{f}: required" for f in ("template_id", "source") if f not in body]
    if "template_id" in body and not is_uuid(body["template_id"]):
        problems.append("template_id: must be a uuid")
    source = body.get("source")
    if "source" in body and not isinstance(source, dict):
        problems.append("source: must be an object")
    elif isinstance(source, dict):
        if "list_type" not in source:
            problems.append("source.list_type: required")
        elif source["list_type"] not in LIST_TYPES:
            problems.append(f"source.list_type: must be one of {list(LIST_TYPES)}")
        ids = source.get("id_list")
        if "id_list" in source and (not isinstance(ids, list) or len(ids) > 500 or not all(
                isinstance(i, str) and len(i) <= 36 for i in ids)):
            problems.append("source.id_list: must be an array of at most 500 strings "
                            "of at most 36 characters")
        if "description" in source and (not isinstance(source["description"], str)
                                        or len(source["description"]) > 256):
            problems.append("source.description: must be a string of at most 256 characters")
    return problems


class Report:
    """One report: what it covers (a snapshot taken when it was created),
    its timeline and its descriptor."""

    def __init__(self, seq, report_id, descriptor, template, source, rows, target_ids,
                 created_u, created_at, outcome):
        self.seq = seq
        self.report_id = report_id
        self.descriptor = descriptor        # opaque hex; the files are <descriptor>.html|pdf
        self.template_id = template["template_id"]
        self.template_name = template["name"]
        self.source = source                # as the client sent it
        self.rows = rows                    # [(scan_id, address, status, counts)]
        self.target_ids = target_ids        # the targets whose deletion deletes it
        self.created_u = created_u
        self.created_at = created_at
        self.outcome = outcome              # completed | failed | stuck
        self.pin = None                     # a status forced by the control API
        self.deleted_at = None

    @property
    def deleted(self):
        return self.deleted_at is not None

    def status(self, u):
        if self.pin is not None:
            return self.pin
        age = u - self.created_u
        if age < REPORT_QUEUED:
            return "queued"
        if age < REPORT_DONE or self.outcome == "stuck":
            return "processing"
        return self.outcome

    def downloads(self, prefix):
        return [f"{prefix}/reports/download/{self.descriptor}.{ext}" for ext in FILE_TYPES]

    # -- the files --
    def _lines(self):
        yield f"{self.template_name} report"
        yield f"Report {self.report_id}, template {self.template_id}"
        yield f"Generated {iso(self.created_at)}, source {self.source['list_type']}"
        yield "scan_id | target | status | " + " | ".join(SEVERITY_KEYS)
        for scan_id, address, status, counts in self.rows:
            yield " | ".join([scan_id, address, status] + [str(counts[k])
                                                           for k in SEVERITY_KEYS])

    def html(self, pad=0):
        esc = html.escape
        rows = "".join(
            "<tr><td>" + "</td><td>".join(esc(str(v)) for v in
                                          [scan_id, address, status]
                                          + [counts[k] for k in SEVERITY_KEYS])
            + "</td></tr>\n" for scan_id, address, status, counts in self.rows)
        text = (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(self.template_name)} report</title>\n</head>\n<body>\n"
            f"<h1>{esc(self.template_name)}</h1>\n"
            f"<p>Report <code>{self.report_id}</code>, template "
            f"<code>{self.template_id}</code>, generated {iso(self.created_at)}, "
            f"source {esc(self.source['list_type'])}.</p>\n"
            "<table>\n<thead><tr><th>scan_id</th><th>target</th><th>status</th>"
            + "".join(f"<th>{k}</th>" for k in SEVERITY_KEYS) + "</tr></thead>\n<tbody>\n"
            + rows + "</tbody>\n</table>\n"
            f"<!-- invicti_sim {'x' * pad}-->\n</body>\n</html>\n")
        return text.encode("utf-8")

    def pdf(self, pad=0, eol=b"\n"):
        """A minimal one-page PDF 1.4 (Helvetica text), xref offsets exact;
        the padding goes in the binary-marker comment after the header."""
        def pdf_text(line):
            raw = line.encode("latin-1", "replace").decode("latin-1")
            return raw.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

        ops = ["BT", "/F1 9 Tf", "40 800 Td", "12 TL"]
        ops += [f"({pdf_text(line)}) Tj T*" for line in self._lines()]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3" + b"x" * pad + b"\n")
        offsets = []
        for number, obj in enumerate(objects, 1):
            offsets.append(len(out))
            out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d%s%%%%EOF" % (
            len(objects) + 1, xref, eol)
        return bytes(out)

    def file(self, ext, size):
        """The file's bytes: its natural size, or padded to exactly `size`
        bytes if that is larger."""
        if ext == "html":
            data = self.html()
            return self.html(size - len(data)) if size > len(data) else data
        data = self.pdf()
        if size <= len(data):
            return data
        pad = size - len(data)
        while True:     # startxref's offset may gain a digit with the padding
            data = self.pdf(pad)
            if len(data) <= size:
                break
            pad -= len(data) - size
        if len(data) < size:    # one short at a digit boundary: a CR LF end of line
            data = self.pdf(pad, b"\r\n")
        return data

    def sim_json(self, u, prefix):
        """GET /_sim/reports: everything, including what the API hides."""
        return {"report_id": self.report_id, "template_id": self.template_id,
                "template_name": self.template_name, "source": self.source,
                "status": self.status(u), "outcome": self.outcome,
                "pinned": self.pin is not None, "created_at": iso(self.created_at),
                "descriptor": self.descriptor, "download": self.downloads(prefix),
                "scan_ids": [row[0] for row in self.rows],
                "target_ids": sorted(self.target_ids), "deleted": self.deleted}


class ReportRoutes:
    """Mixed into the API app (api.py): report templates and reports."""

    def report_templates(self, req):
        return json_response({"templates": self.sim.report_templates})

    def _report(self, report_id):
        report = self.sim.reports.get(report_id.lower())
        if report is None or report.deleted:
            raise ApiError(404, [f"Report {report_id} not found"], "Report not found")
        return report

    def _report_json(self, report, now):
        """The spec's Report; download only once completed."""
        status = report.status(now)
        return {"report_id": report.report_id, "template_id": report.template_id,
                "template_name": report.template_name, "template_type": 0,
                "source": report.source, "generation_date": self._date(report.created_at),
                "status": status,
                "download": self._links(report) if status == "completed" else []}

    def _links(self, report):
        links = report.downloads(self.PREFIX)
        if self._config.download_links == "foreign":
            links = [f"https://downloads.attacker.invalid{link}" for link in links]
        return links

    def _covered(self, source):
        """-> (rows, target_ids) the report covers; 400/404 for bad ids."""
        sim, now = self.sim, self.sim.clock.now()
        kind = source["list_type"]
        ids = list(dict.fromkeys(i.lower() for i in source.get("id_list", [])))
        if kind not in SIMULATED_LIST_TYPES:
            raise ApiError(400, [f"source.list_type: {kind} is not simulated (only "
                                 f"{', '.join(SIMULATED_LIST_TYPES)} are)"])
        if kind != "all_vulnerabilities" and not ids:
            raise ApiError(400, [f"source.id_list: list_type {kind} needs at least one id"])
        live = [s for s in sim.scans.values() if not s.deleted]
        if kind == "scans":
            for i in ids:
                if i not in sim.scans or sim.scans[i].deleted:
                    raise ApiError(404, [f"Scan {i} not found"], "Scan not found")
            scans = [sim.scans[i] for i in ids]
            target_ids = {s.target.target_id for s in scans}
        elif kind == "targets":
            for i in ids:
                if i not in sim.targets:
                    raise ApiError(404, [f"Target {i} not found"], "Target not found")
            scans = [s for s in live if s.target.target_id in ids]
            target_ids = set(ids)
        else:
            scans, target_ids = live, set()     # not tied to a target
        rows = []
        for scan in scans:
            st = scan.state(now)
            rows.append((scan.scan_id, scan.target.address, st.status,
                         scan.counts(st.progress)))
        return rows, target_ids

    def add_report(self, req):
        body = req.json_body()
        problems = report_body_problems(body)
        if problems:
            raise ApiError(400, problems)
        sim = self.sim
        template = next((t for t in sim.report_templates
                         if t["template_id"] == body["template_id"].lower()), None)
        if template is None:
            raise ApiError(404, [f"Report template {body['template_id']} not found"],
                           "Report template not found")
        rows, target_ids = self._covered(body["source"])
        report = Report(len(sim.reports) + 1, random_uuid(sim.object_rng),
                        "%064x" % sim.object_rng.getrandbits(256), template,
                        body["source"], rows, target_ids, sim.clock.now(), time.time(),
                        self._config.report_outcome)
        sim.reports[report.report_id] = report
        sim.report_descriptors[report.descriptor] = report
        return json_response(self._report_json(report, sim.clock.now()), 201,
                             [("Location", f"{self.PREFIX}/reports/{report.report_id}")])

    def list_reports(self, req):
        """The spec's ReportListResponse, newest first."""
        args = req.query_args()
        parse_no_filter(args.get("q", ""))
        reports = [r for r in reversed(list(self.sim.reports.values())) if not r.deleted]
        now = self.sim.clock.now()
        page, pagination = paginate(self._config, "reports", reports,
                                    [-r.seq for r in reports], args, "",
                                    "generation_date:desc")
        return json_response({"reports": [self._report_json(r, now) for r in page],
                              "pagination": pagination})

    def get_report(self, req, report_id):
        return json_response(self._report_json(self._report(report_id), self.sim.clock.now()))

    def delete_report(self, req, report_id):
        self._report(report_id).deleted_at = time.time()
        return Response(204)

    def download_report(self, req, descriptor):
        """200 with the file; 404 (off the spec, which declares only 200) for
        an unknown descriptor, a deleted report or one not completed."""
        name, _, ext = descriptor.rpartition(".")
        report = self.sim.report_descriptors.get(name) if ext in FILE_TYPES else None
        if (report is None or report.deleted
                or report.status(self.sim.clock.now()) != "completed"):
            raise ApiError(404, [f"Report file {descriptor} not found"])
        data = report.file(ext, self._config.report_size)
        return Response(200, data, [("Content-Disposition",
                                     f'attachment; filename="report_{report.report_id}.{ext}"')],
                        ctype=FILE_TYPES[ext])
