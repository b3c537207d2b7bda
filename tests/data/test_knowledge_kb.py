"""Knowledge base content and raw label normalisation."""

import pytest

from mimo.data.knowledge import entries, lookup, normalize_label


def test_kb_has_at_least_60_entries_across_modalities():
    es = entries()
    assert len(es) >= 60
    mods = {m for e in es for m in e.appearance}
    assert {"CT", "MR", "XR", "fundus", "dermoscopy", "endoscopy"} <= mods
    assert any(e.is_finding for e in es) and any(not e.is_finding for e in es)
    for e in es:
        assert e.function and e.location and e.system and e.appearance


@pytest.mark.parametrize(
    ("raw", "term"),
    [
        ("kidney_left", "left kidney"),
        ("Left-Lateral-Ventricle", "left lateral ventricle"),
        ("GTVp", "primary tumour"),
        ("GTVn", "metastatic lymph node"),
        ("rk", "right kidney"),
        ("kidney_L", "left kidney"),
        ("lt kidney", "left kidney"),
        ("adrenal_gland_right", "right adrenal gland"),
        ("postcava", "inferior vena cava"),
        ("portal_vein_and_splenic_vein", "portal vein"),
        ("Left-Thalamus-Proper", "left thalamus"),
        ("3rd-Ventricle", "third ventricle"),
        ("Brain-Stem", "brainstem"),
        ("vertebrae_L1", "L1 vertebra"),
        ("liver_tumor", "liver tumour"),
        ("lesion_2", "lesion"),
        ("gall bladder", "gallbladder"),
        ("enhancing tumour", "enhancing tumour"),
        ("edema", "peritumoural oedema"),
        ("left_hemisphere", "left cerebral hemisphere"),
        ("grey_matter", "grey matter"),
        ("lung_upper_lobe_left", "left upper lobe"),
    ],
)
def test_dataset_spellings_normalise(raw, term):
    assert normalize_label(raw) == term


def test_numeric_unknown_and_contradictory_labels_do_not_normalise():
    for raw in ("3", "0", "background", "Anterior", "zzz_unknown", "liver_left"):
        assert normalize_label(raw) is None


def test_modality_context():
    assert normalize_label("vessel") is None
    assert normalize_label("vessel", "fundus") == "retinal vessels"
    assert normalize_label("lesion", "dermoscopy") == "skin lesion"
    assert normalize_label("OD", "fundus") == "optic disc"


def test_canonical_terms_and_synonyms_round_trip():
    for e in entries():
        forms = [e.term] + ([f"left {e.term}", f"right {e.term}"] if e.laterality == "bilateral" else [])
        for form in forms:
            assert normalize_label(form) == form
            for syn in lookup(form).synonyms:
                assert normalize_label(syn) == form


def test_sided_lookup():
    e = lookup("left kidney")
    assert e.side == "left" and e.paired_with == "right kidney" and e.base == "kidney"
    assert lookup("spleen").side == "left" and lookup("liver").side == "right"
    with pytest.raises(KeyError, match="no entry"):
        lookup("not a structure")
