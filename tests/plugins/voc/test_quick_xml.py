"""The reader's quick XML path against its ElementTree path: the same objects for every document it reads,
and None (ElementTree decides, errors included) for everything else."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from dsformats import DatasetError

from .helpers import obj, write_file, xml

CANONICAL = """<annotation>
  <folder>JPEGImages</folder>
  <filename>a.jpg</filename>
  <source>
    <database>Unknown</database>
  </source>
  <size>
    <width>20</width>
    <height>10</height>
    <depth>3</depth>
  </size>
  <segmented>0</segmented>
  <object>
    <name>cat</name>
    <pose>Left</pose>
    <truncated>1</truncated>
    <occluded>0</occluded>
    <difficult>true</difficult>
    <bndbox>
      <xmin>1.5</xmin>
      <ymin>2</ymin>
      <xmax>3.25</xmax>
      <ymax>4</ymax>
    </bndbox>
    <point>
      <x>2</x>
      <y>3.5</y>
    </point>
    <attributes>
      <attribute>
        <name>area</name>
        <value> 12.0 </value>
      </attribute>
      <attribute>
        <name>empty</name>
        <value />
      </attribute>
    </attributes>
  </object>
  <object>
    <name>person</name>
    <bndbox>
      <xmin>4</xmin>
      <ymin>5</ymin>
      <xmax>6</xmax>
      <ymax>7</ymax>
    </bndbox>
    <part>
      <name>head</name>
      <bndbox>
        <xmin>5.5</xmin>
        <ymin>6</ymin>
        <xmax>7.5</xmax>
        <ymax>8</ymax>
      </bndbox>
    </part>
    <actions>
      <jumping>1</jumping>
      <phoning>0</phoning>
      <reading></reading>
      <running/>
    </actions>
  </object>
</annotation>
"""

VARIANTS = [
    CANONICAL,
    '<?xml version="1.0" encoding="UTF-8"?>\n' + CANONICAL,
    "<?xml version='1.0' encoding='utf-8' standalone='yes' ?>" + CANONICAL,
    '<?xml version="1.1"?>' + CANONICAL,
    '<?xml version="1.0" encoding="latin-1"?>' + CANONICAL,
    " \n" + CANONICAL + "\n\n",
    " <?xml version='1.0'?>" + CANONICAL,
    CANONICAL.replace("<name>cat</name>", "<name >cat</name >"),
    CANONICAL.replace("<value />", "<value/>"),
    CANONICAL.replace("<value />", "<value\n/>"),
    CANONICAL.replace("<name>cat</name>", "<name>cat</name><name>dog</name>"),
    CANONICAL.replace("<name>cat</name>", "<name> </name>"),
    CANONICAL.replace("<name>cat</name>", "<name/>"),
    CANONICAL.replace("<name>cat</name>", "<name>tiger</name>"),
    CANONICAL.replace("<name>cat</name>", "<name>c<b/>at</name>"),
    CANONICAL.replace("<xmin>1.5</xmin>", "<xmin>1.5</xmin><xmin>9</xmin>"),
    CANONICAL.replace("<xmin>1.5</xmin>", "<xmin>nan</xmin>"),
    CANONICAL.replace("<xmin>1.5</xmin>", "<xmin>x</xmin>"),
    CANONICAL.replace("<xmin>1.5</xmin>", "<xmin/>"),
    CANONICAL.replace("<xmin>1.5</xmin>", ""),
    CANONICAL.replace("<xmin>1.5</xmin>", "<xmin> 1_5 </xmin>"),
    CANONICAL.replace("<pose>Left</pose>", "<pose/>"),
    CANONICAL.replace("<pose>Left</pose>", "<pose><a/></pose>"),
    CANONICAL.replace("<truncated>1</truncated>", "<truncated>2</truncated><truncated>0</truncated>"),
    CANONICAL.replace("<truncated>1</truncated>", "<truncated>maybe</truncated>"),
    CANONICAL.replace("<truncated>1</truncated>", "<truncated/>"),
    CANONICAL.replace("<x>2</x>", ""),
    CANONICAL.replace("<x>2</x>", "<x>a</x>"),
    CANONICAL.replace("<point>", "<point><point/>"),
    CANONICAL.replace("<value> 12.0 </value>", ""),
    CANONICAL.replace("<name>area</name>", ""),
    CANONICAL.replace("<name>area</name>", "<name/>"),
    CANONICAL.replace("<name>area</name>", "<name> truncated </name>"),
    CANONICAL.replace("<attributes>", "<attributes><attribute/>"),
    CANONICAL.replace(
        "</attributes>", "</attributes><attributes><attribute><name>b</name><value>2</value></attribute></attributes>"
    ),
    CANONICAL.replace("<jumping>1</jumping>", "<jumping><x/></jumping>"),
    CANONICAL.replace("<name>head</name>", "<name>tail</name>"),
    CANONICAL.replace("<name>head</name>", ""),
    CANONICAL.replace("<name>head</name>", "<name>  </name>"),
    CANONICAL.replace("</part>", "</part><part><name>hand</name></part>"),
    CANONICAL.replace("</part>", "<object><name>dog</name></object></part>"),
    CANONICAL.replace("<size>", "<size><width>7</width>").replace("</size>", "</size><size><width>1</width></size>"),
    CANONICAL.replace("<width>20</width>", "<width>0</width>"),
    CANONICAL.replace("<width>20</width>", "<width>-3</width>"),
    CANONICAL.replace("<width>20</width>", "<width>2.7</width>"),
    CANONICAL.replace("<width>20</width>", "<width>w</width>"),
    CANONICAL.replace("<width>20</width>", "<width/>"),
    CANONICAL.replace("<width>20</width>", ""),
    CANONICAL.replace("<filename>a.jpg</filename>", "<filename/>"),
    CANONICAL.replace("<filename>a.jpg</filename>", "<filename>  b.jpg </filename><filename>c.jpg</filename>"),
    CANONICAL.replace("<filename>a.jpg</filename>", ""),
    CANONICAL.replace("</source>", "</source><filename>late.jpg</filename>"),
    CANONICAL.replace("<segmented>0</segmented>", "<object/>"),
    CANONICAL.replace("<segmented>0</segmented>", "<source><object><name>cat</name></object></source>"),
    CANONICAL.replace("  </object>\n  <object>", "  </object>\n  <owner>me</owner>\n  <object>"),
    # VOC2007's own header elements, kept as item attributes (a repeated one: the ElementTree path's list)
    CANONICAL.replace("<segmented>0</segmented>", "<owner><flickrid>x</flickrid><name>Tim</name></owner>"
                      "<path>/data/a.jpg</path><segmented>0</segmented>"),
    CANONICAL.replace("<segmented>0</segmented>", "<path>a</path><path>b</path><segmented>0</segmented>"),
    CANONICAL.replace("<segmented>0</segmented>", "<a><b><c><d><e><f><g><h><i>deep</i></h></g></f></e></d></c>"
                      "</b></a><segmented>0</segmented>"),
    CANONICAL.replace("<folder>JPEGImages</folder>", "<folder>VOC2007</folder><extra/>"),
    # unknown <object> children: attributes of the box
    CANONICAL.replace("<pose>Left</pose>", "<pose>Left</pose><score>0.5</score><meta><a>1</a><b/></meta>"),
    CANONICAL.replace("<pose>Left</pose>", "<pose>Left</pose><t>1</t><t>2</t>"),
    CANONICAL.replace("<pose>Left</pose>", "<pose>Left</pose>" + "<d>" * 9 + "x" + "</d>" * 9),
    CANONICAL.replace("<pose>Left</pose>", "<pose>Left</pose><size>shadowed</size>"),
    CANONICAL.replace("<object>", "<object >", 1),
    CANONICAL.replace("</object>", "</object >", 1),
    CANONICAL.replace("<object>", "<object><object>", 1),
    CANONICAL.replace("<annotation>", "<annotation verified='yes'>"),
    CANONICAL.replace("<annotation>", "<voc:annotation>").replace("</annotation>", "</voc:annotation>"),
    CANONICAL.replace("Unknown", "a &amp; b"),
    CANONICAL.replace("Unknown", "<![CDATA[x]]>"),
    CANONICAL.replace("Unknown", "x]]>y"),
    CANONICAL.replace("Unknown", "a > b"),
    CANONICAL.replace("Unknown", "<!-- c -->"),
    CANONICAL.replace("Unknown", "<?pi x?>"),
    CANONICAL.replace("Unknown", "\u00e9t\u00e9"),
    CANONICAL.replace("Unknown", "a\x01b"),
    CANONICAL.replace("\n", "\r\n"),
    CANONICAL.replace("\n", "\t"),
    CANONICAL.replace("<database>Unknown</database>", "<database>x>y<z>/y<w</database>"),
    CANONICAL.replace("<database>Unknown</database>", "<1database>x</1database>"),
    CANONICAL.replace("<database>Unknown</database>", "<database>x</Database>"),
    CANONICAL.replace("<database>Unknown</database>", "<database>x"),
    CANONICAL.replace("<database>Unknown</database>", "</database>"),
    CANONICAL.replace("<database>Unknown</database>", "<xml.db-x_1>x</xml.db-x_1>"),
    CANONICAL + "<annotation/>",
    CANONICAL + "text",
    CANONICAL.replace("annotation>", "dataset>"),
    "<annotation/>",
    "<annotation></annotation>",
    "<annotation><object></object></annotation>",
    "",
    "<",
    ">",
    "<>",
    "<annotation>",
    xml(obj("cat")),
    xml(obj("cat", box=(1.25, 2, 3, "4.0"), extra="<difficult>1</difficult><occluded>yes</occluded>")),
    xml(obj("cat") + obj("dog", box=(0, 0, 1e3, 2)) + obj("person", extra="<actions><other>0</other></actions>")),
]


@pytest.fixture
def reader(tmp_path):
    from dsformats_voc.reader import VocReader

    write_file(tmp_path, "Annotations/a.xml", xml(obj("cat")))
    with VocReader(tmp_path) as opened:
        yield opened


def _outcome(parsed) -> object:
    size, filename, objects, extras = parsed
    return repr(
        (size, filename, [(o.label, o.box, o.attributes, o.parts, o.line) for o in objects], extras)
    )


def _labels(parsed) -> object:
    """What a count-only read keeps: everything but the objects' boxes and attributes."""
    size, filename, objects, extras = parsed
    return repr((size, filename, [(o.label, [name for name, _ in o.parts], o.line) for o in objects], extras))


def _check(reader, data: bytes) -> bool:
    """Assert that the quick path agrees with ElementTree on ``data``; True when the quick path read it.

    Their count-only reads (labels only: no number is read) agree too: the quick one reads what ElementTree's
    reads, or leaves it to it."""
    quick = reader._quick_parse(data)
    counted = reader._quick_parse(data, count_only=True)
    try:
        tree = reader._parse_tree(data, Path("a.xml"))
    except (DatasetError, LookupError):  # LookupError: an unknown declared encoding
        assert quick is None, data
        tree = None
    try:
        counted_tree = reader._parse_tree(data, Path("a.xml"), count_only=True)
    except (DatasetError, LookupError):
        assert counted is None, data
        return False
    if quick is not None:
        assert tree is not None and _outcome(quick) == _outcome(tree), data
        assert counted is not None, data
    if tree is not None:
        assert _labels(counted_tree) == _labels(tree), data
    if counted is not None:
        assert _outcome(counted) == _outcome(counted_tree), data
        assert all(o.box == () and o.attributes == {} for o in counted[2]), data
    return quick is not None


def test_quick_path_agrees_with_elementtree_on_variants(reader):
    read = [_check(reader, text.encode("utf-8")) for text in VARIANTS]
    assert read[0] and read[1] and read[2]  # the plain layouts do take the quick path
    assert sum(read) > 20


def test_quick_path_agrees_with_elementtree_on_mutations(reader):
    """Random edits of plain documents (characters and tags inserted, deleted, doubled, swapped)."""
    rng = random.Random(int(os.environ.get("VOC_FUZZ_SEED", "6")))
    pieces = ["<", ">", "/", " ", "\n", "a", "1", ".", "&", "<name>", "</name>", "<x/>", "<object>", "</object>",
              "<part>", "</part>", "<bndbox>", "</bndbox>", "<attributes>", "</attributes>", "<attribute>",
              "<value>", "</value>", "<actions>", "<size>", "</size>", "<width>", "<?", "?>", "]]>", "\r", "'"]
    read = 0
    for _ in range(int(os.environ.get("VOC_FUZZ_COUNT", "3000"))):
        text = rng.choice(VARIANTS[:3] + VARIANTS[-3:])
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            edit = rng.random()
            if edit < 0.4:
                text = text[:at] + rng.choice(pieces) + text[at:]
            elif edit < 0.7:
                text = text[:at] + text[at + rng.randint(1, 12) :]
            elif edit < 0.85:
                lines = text.split("\n")
                i = rng.randrange(len(lines))
                lines.insert(rng.randrange(len(lines) + 1), lines[i])
                text = "\n".join(lines)
            else:
                lines = text.split("\n")
                i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
                text = "\n".join(lines)
        read += _check(reader, text.encode("utf-8"))
    assert read > 100  # many edited documents are still plain, and still read quickly


def test_long_documents_are_read_quickly_without_keeping_their_plans(reader):
    """A document's plan is kept by its whole tag sequence, so long ones (many objects) are planned each time
    and not kept: the cache stays small whatever the dataset."""
    reader._document_plans.clear()
    short = xml(obj("cat") + obj("dog")).encode()
    long = xml("".join(obj("cat", box=(k, k, k + 1, k + 2)) for k in range(100))).encode()
    assert _check(reader, short) and _check(reader, long)
    assert len(reader._quick_parse(long)[2]) == 100
    assert len(reader._document_plans) == 1  # the short one's
    assert [len(key.split("<")) for key in reader._document_plans] == [short.count(b"<")]
