"""XML: ``root.child.leaf`` paths (Wings turns dots into ``/``), element text replaced.

lxml keeps comments, namespaces and the declaration, which Space Engineers' and
Trackmania's configs rely on. A path segment may carry a predicate (``server[@id='1']``);
plain missing elements are created, so a fresh file can be patched into shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lxml import etree
from stellar_protocol.configpatch import Replacement

from .structured import PatchError
from .values import new_value

_SEGMENT = re.compile(r"[A-Za-z_][\w.-]*(?:\[[^\]]*\])?")


def _segments(path: str) -> list[str]:
    """Split on dots that are outside ``[...]`` predicates."""
    out, depth, cur = [], 0, ""
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    for seg in out:
        if not _SEGMENT.fullmatch(seg):
            raise PatchError(f"{path!r}: {seg!r} is not an element name")
    return out


def patch_xml(text: str, reps: list[Replacement], values: Mapping[str, str]) -> str:
    parser = etree.XMLParser(remove_blank_text=False, resolve_entities=False, no_network=True)
    root = etree.fromstring(text.encode("utf-8"), parser) if text.strip() else None
    had_declaration = text.lstrip().startswith("<?xml")
    for rep in reps:
        segments = _segments(rep.match)
        if root is None:
            if "[" in segments[0]:
                raise PatchError(f"{rep.match!r}: cannot create a root element with a predicate")
            root = etree.Element(segments[0])
        if root.tag != segments[0].split("[")[0]:
            raise PatchError(f"{rep.match!r}: the document root is <{root.tag}>")
        found = root.xpath("/" + "/".join(segments)) if len(segments) > 1 else [root]
        if not found:
            if any("[" in s for s in segments):
                continue  # predicates select existing elements only
            node = root
            for seg in segments[1:]:
                child = node.find(seg)
                node = child if child is not None else etree.SubElement(node, seg)
            found = [node]
        for element in found:
            value = new_value(rep, element.text or "", values)
            if value is not None:
                element.text = value
    if root is None:
        return text
    # the whole tree, so a DOCTYPE and comments around the root element are kept too
    body = etree.tostring(root.getroottree(), encoding="utf-8", xml_declaration=had_declaration or not text.strip())
    return body.decode("utf-8") + "\n"
