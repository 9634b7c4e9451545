"""Readable Excel workbooks from DataFrames, written directly as SpreadsheetML.

Why not openpyxl for writing: its per-cell objects make a province ledger (100,000+
rows, 3-4 million cells with number formats) take well over a minute; generating the
sheet XML column by column takes a few seconds. The output is a plain, standard .xlsx
(inline strings, one style per number format) that Excel, WPS and LibreOffice open and
openpyxl reads back. It is also deterministic: fixed zip timestamps, no creation date,
so the same inputs give a byte-identical workbook.

Every sheet has optional note lines on top (a line is one text in column A, or a tuple
of texts in columns A, B, ...: e.g. a form's header block of label, value pairs), then
two header rows: the column's stable
key (what scripts and tests read) and its Chinese label with the unit (what people
read); panes are frozen below the headers and right of the identifying columns, an
auto-filter sits on the key row, and each column has its width and number format.
NaN, None and infinities become empty cells.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

INT = "#,##0"
QTY = "#,##0.00"
QTY3 = "#,##0.000"
FACTOR = "0.0000##"
PCT = "0.0%"
YEAR = "0"

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: byte-identical files
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")

# Fixed styles (cellXfs index): 0 default, 1 key header, 2 label header, 3 note; number
# formats are added after these, one style each.
STYLE_KEY, STYLE_LABEL, STYLE_NOTE = 1, 2, 3


@dataclass(frozen=True)
class Col:
    key: str
    label: str = ""  # Chinese label with unit, e.g. "电 (kWh)"
    fmt: str | None = None  # number format; None: General
    width: float = 12.0


def col_letter(n: int) -> str:
    """1 -> A, 27 -> AA."""
    s = ""
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


def _text(v: str) -> str:
    return escape(_BAD_XML.sub("", v))


def _str_cell(ref: str, v: str, style: int = 0) -> str:
    s = f' s="{style}"' if style else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t xml:space="preserve">{_text(v)}</t></is></c>'


@dataclass
class _Sheet:
    name: str
    xml: str
    filter_ref: str | None


@dataclass
class FastWorkbook:
    """A write-once workbook: `write_sheet(...)` as often as needed, then `save(path)`."""

    sheets: list[_Sheet] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)

    def style_of(self, fmt: str | None) -> int:
        if fmt is None:
            return 0
        if fmt not in self.formats:
            self.formats.append(fmt)
        return 4 + self.formats.index(fmt)

    # -- cells ---------------------------------------------------------------------
    def _column(self, values: pd.Series, letter: str, rows: list[str], fmt: str | None) -> list[str]:
        style = self.style_of(fmt)
        s = f' s="{style}"' if style else ""
        kind = values.dtype.kind if isinstance(values.dtype, np.dtype) else "O"  # nullable dtypes: per value
        if kind == "b":
            return [f'<c r="{letter}{r}"{s} t="b"><v>{int(v)}</v></c>' for r, v in zip(rows, values.tolist(), strict=True)]
        if kind in "iu":
            return [f'<c r="{letter}{r}"{s}><v>{v}</v></c>' for r, v in zip(rows, values.tolist(), strict=True)]
        if kind == "f":
            arr = values.to_numpy(float)
            ok = np.isfinite(arr).tolist()
            return [f'<c r="{letter}{r}"{s}><v>{v!r}</v></c>' if good else ""
                    for r, v, good in zip(rows, arr.tolist(), ok, strict=True)]
        out = []
        for r, v in zip(rows, values.astype(object).tolist(), strict=True):
            ref = f"{letter}{r}"
            if v is None or v is pd.NA or v is pd.NaT or v == "" or (isinstance(v, float) and not np.isfinite(v)):
                out.append("")
            elif isinstance(v, bool | np.bool_):
                out.append(f'<c r="{ref}"{s} t="b"><v>{int(v)}</v></c>')
            elif isinstance(v, int | np.integer):
                out.append(f'<c r="{ref}"{s}><v>{int(v)}</v></c>')
            elif isinstance(v, float | np.floating):
                out.append(f'<c r="{ref}"{s}><v>{float(v)!r}</v></c>')
            else:
                out.append(_str_cell(ref, str(v), style))
        return out

    def write_sheet(self, title: str, df: pd.DataFrame, cols: list[Col], freeze_cols: int = 2,
                    notes: list[str | tuple[str, ...]] | None = None) -> None:
        notes = notes or []
        key_row = len(notes) + 1
        first = key_row + 2
        n = len(df)
        rows_xml = [f'<row r="{i + 1}">' + "".join(
            _str_cell(f"{col_letter(k + 1)}{i + 1}", str(part), STYLE_NOTE) for k, part in
            enumerate((line,) if isinstance(line, str) else line) if part != "") + "</row>" for i, line in enumerate(notes)]
        letters = [col_letter(i + 1) for i in range(len(cols))]
        rows_xml.append(f'<row r="{key_row}">' + "".join(
            _str_cell(f"{x}{key_row}", c.key, STYLE_KEY) for x, c in zip(letters, cols, strict=True)) + "</row>")
        rows_xml.append(f'<row r="{key_row + 1}">' + "".join(
            _str_cell(f"{x}{key_row + 1}", c.label or c.key, STYLE_LABEL) for x, c in zip(letters, cols, strict=True))
            + "</row>")
        rows = [str(first + i) for i in range(n)]
        columns = [self._column(df[c.key].reset_index(drop=True) if c.key in df else pd.Series([None] * n, dtype=object),
                                x, rows, c.fmt) for x, c in zip(letters, cols, strict=True)]
        rows_xml.extend(f'<row r="{r}">{"".join(cells)}</row>' for r, cells in zip(rows, zip(*columns, strict=True), strict=True))
        last = letters[-1] if letters else "A"
        filter_ref = f"A{key_row}:{last}{max(key_row, first + n - 1)}" if cols else None
        top_left = f"{col_letter(freeze_cols + 1)}{first}"
        pane = (f'<pane xSplit="{freeze_cols}" ySplit="{first - 1}" topLeftCell="{top_left}" activePane="bottomRight" '
                f'state="frozen"/><selection pane="bottomRight" activeCell="{top_left}" sqref="{top_left}"/>'
                if freeze_cols else
                f'<pane ySplit="{first - 1}" topLeftCell="{top_left}" activePane="bottomLeft" state="frozen"/>'
                f'<selection pane="bottomLeft" activeCell="{top_left}" sqref="{top_left}"/>')
        widths = "".join(f'<col min="{i + 1}" max="{i + 1}" width="{c.width:g}" customWidth="1"/>'
                         for i, c in enumerate(cols))
        selected = ' tabSelected="1"' if not self.sheets else ""
        cols_xml = f"<cols>{widths}</cols>" if widths else ""
        filter_xml = f'<autoFilter ref="{filter_ref}"/>' if filter_ref else ""
        xml = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{NS}" xmlns:r="{NS_R}">'
               f'<dimension ref="A1:{last}{max(key_row + 1, first + n - 1)}"/>'
               f'<sheetViews><sheetView workbookViewId="0"{selected}>'
               f'{pane}</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
               f'{cols_xml}<sheetData>{"".join(rows_xml)}</sheetData>{filter_xml}</worksheet>')
        self.sheets.append(_Sheet(title, xml, filter_ref))

    # -- package -------------------------------------------------------------------
    def _styles(self) -> str:
        quote = {'"': "&quot;"}
        numfmts = "".join(f'<numFmt numFmtId="{164 + i}" formatCode="{escape(f, quote)}"/>'
                          for i, f in enumerate(self.formats))
        numfmts_xml = f'<numFmts count="{len(self.formats)}">{numfmts}</numFmts>' if self.formats else ""
        xfs = ['<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>',
               '<xf numFmtId="0" fontId="1" fillId="2" borderId="0" xfId="0" applyFont="1" applyFill="1"/>',
               '<xf numFmtId="0" fontId="1" fillId="3" borderId="0" xfId="0" applyFont="1" applyFill="1" '
               'applyAlignment="1"><alignment vertical="top" wrapText="1"/></xf>',
               '<xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1"/>']
        xfs += [f'<xf numFmtId="{164 + i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
                for i in range(len(self.formats))]
        font = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
        return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<styleSheet xmlns="{NS}">'
                f'{numfmts_xml}'
                f'<fonts count="3"><font>{font}</font><font><b/>{font}</font><font><i/>{font}</font></fonts>'
                '<fills count="4"><fill><patternFill patternType="none"/></fill>'
                '<fill><patternFill patternType="gray125"/></fill>'
                '<fill><patternFill patternType="solid"><fgColor rgb="FFDDEBF7"/><bgColor indexed="64"/></patternFill></fill>'
                '<fill><patternFill patternType="solid"><fgColor rgb="FFF2F2F2"/><bgColor indexed="64"/></patternFill></fill>'
                '</fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
                '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
                f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
                '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')

    def save(self, path: str | Path) -> None:
        if not self.sheets:
            raise ValueError("a workbook needs at least one sheet")
        n = len(self.sheets)
        sheets = "".join(f'<sheet name="{escape(s.name)}" sheetId="{i + 1}" r:id="rId{i + 1}"/>'
                         for i, s in enumerate(self.sheets))
        names = "".join(
            f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
            f"'{escape(s.name)}'!{_absolute(s.filter_ref)}</definedName>"
            for i, s in enumerate(self.sheets) if s.filter_ref)
        defined = f"<definedNames>{names}</definedNames>" if names else ""
        workbook = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{NS}" xmlns:r="{NS_R}">'
                    f'<bookViews><workbookView activeTab="0"/></bookViews><sheets>{sheets}</sheets>'
                    f'{defined}</workbook>')
        rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
        wb_rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                   '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   + "".join(f'<Relationship Id="rId{i + 1}" Type="{rel}/worksheet" Target="worksheets/sheet{i + 1}.xml"/>'
                             for i in range(n))
                   + f'<Relationship Id="rId{n + 1}" Type="{rel}/styles" Target="styles.xml"/></Relationships>')
        root_rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                     '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                     f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        ct = "application/vnd.openxmlformats-officedocument.spreadsheetml"
        types = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                 '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                 '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                 '<Default Extension="xml" ContentType="application/xml"/>'
                 f'<Override PartName="/xl/workbook.xml" ContentType="{ct}.sheet.main+xml"/>'
                 f'<Override PartName="/xl/styles.xml" ContentType="{ct}.styles+xml"/>'
                 + "".join(f'<Override PartName="/xl/worksheets/sheet{i + 1}.xml" ContentType="{ct}.worksheet+xml"/>'
                           for i in range(n)) + "</Types>")
        parts = [("[Content_Types].xml", types), ("_rels/.rels", root_rels), ("xl/workbook.xml", workbook),
                 ("xl/_rels/workbook.xml.rels", wb_rels), ("xl/styles.xml", self._styles())]
        parts += [(f"xl/worksheets/sheet{i + 1}.xml", s.xml) for i, s in enumerate(self.sheets)]
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            for name, text in parts:
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o600 << 16
                z.writestr(info, text.encode("utf-8"))


def _absolute(ref: str | None) -> str:
    """A1:S9 -> $A$1:$S$9."""
    return ":".join(re.sub(r"([A-Z]+)(\d+)", r"$\1$\2", part) for part in (ref or "").split(":"))


def new_workbook() -> FastWorkbook:
    return FastWorkbook()


def write_sheet(wb: FastWorkbook, title: str, df: pd.DataFrame, cols: list[Col], freeze_cols: int = 2,
                notes: list[str | tuple[str, ...]] | None = None) -> None:
    """Append a sheet `title` with `df[[c.key for c in cols]]` (module docstring)."""
    wb.write_sheet(title, df, cols, freeze_cols, notes)
