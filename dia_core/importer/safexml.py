"""The one XML parser for book files: lxml with entities never resolved, no network, no DTD
loading and no huge trees (XXE and billion-laughs are also refused earlier, by archive.py)."""
from __future__ import annotations

from lxml import etree

from ..errors import InputError


def _parser(html: bool = False):
    if html:
        return etree.HTMLParser(no_network=True, huge_tree=False, remove_comments=True, remove_pis=True)
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                           dtd_validation=False, remove_comments=True, remove_pis=True, recover=True)


def parse_xml(data: bytes, label: str, what: str, *, html: bool = False):
    """The root element of ``data``; InputError (naming ``label`` and ``what``) when it is not XML."""
    try:
        root = etree.fromstring(data, _parser(html))
    except (etree.XMLSyntaxError, ValueError) as e:
        raise InputError(f"{what}: not well-formed XML ({e})", file=label) from None
    if root is None:
        raise InputError(f"{what}: no XML content", file=label)
    return root


def local(tag) -> str:
    """An element's tag without its namespace ('' for comments and entities)."""
    return etree.QName(tag).localname if isinstance(tag, str) else ""


__all__ = ["parse_xml", "local"]
