"""UTF-8 bytes per byte of English for each FLORES-200 language, so lengths compare across scripts.

Median over the 997 line-aligned FLORES-200 dev sentences (e.g. Chinese 0.93: fewer characters but
3 bytes each; Burmese 3.54). Dividing a text's byte length by its language's factor gives its
"English-equivalent" length; the length-ratio filter compares those. `measure_length_factors`
regenerates the table from a FLORES-200 folder.
"""

from __future__ import annotations

import statistics

__all__ = ["BYTES_PER_ENGLISH_BYTE", "english_equivalent_length", "measure_length_factors"]

BYTES_PER_ENGLISH_BYTE: dict[str, float] = {
    "ace_Arab": 1.51, "ace_Latn": 1.08, "acm_Arab": 1.54, "acq_Arab": 1.57, "aeb_Arab": 1.53,
    "afr_Latn": 1.07, "ajp_Arab": 1.48, "aka_Latn": 1.09, "als_Latn": 1.2, "amh_Ethi": 1.73,
    "apc_Arab": 1.48, "arb_Arab": 1.58, "arb_Latn": 1.16, "ars_Arab": 1.58, "ary_Arab": 1.54,
    "arz_Arab": 1.55, "asm_Beng": 2.58, "ast_Latn": 1.07, "awa_Deva": 2.49, "ayr_Latn": 1.06,
    "azb_Arab": 1.62, "azj_Latn": 1.25, "bak_Cyrl": 1.86, "bam_Latn": 1.04, "ban_Latn": 1.12,
    "bel_Cyrl": 2.06, "bem_Latn": 1.23, "ben_Beng": 2.6, "bho_Deva": 2.47, "bjn_Arab": 1.69,
    "bjn_Latn": 1.05, "bod_Tibt": 3.35, "bos_Latn": 1.03, "bug_Latn": 1.1, "bul_Cyrl": 1.88,
    "cat_Latn": 1.12, "ceb_Latn": 1.2, "ces_Latn": 1.08, "cjk_Latn": 1.1, "ckb_Arab": 1.77, "crh_Latn": 1.13,
    "cym_Latn": 1.07, "dan_Latn": 1.05, "deu_Latn": 1.18, "dik_Latn": 0.94, "dyu_Latn": 1.06,
    "dzo_Tibt": 3.74, "ell_Grek": 2.17, "eng_Latn": 1.0, "epo_Latn": 1.02, "est_Latn": 1.01,
    "eus_Latn": 1.06, "ewe_Latn": 1.06, "fao_Latn": 1.1, "fij_Latn": 1.16, "fin_Latn": 1.11,
    "fon_Latn": 1.24, "fra_Latn": 1.23, "fur_Latn": 1.13, "fuv_Latn": 0.96, "gaz_Latn": 1.2,
    "gla_Latn": 1.29, "gle_Latn": 1.22, "glg_Latn": 1.13, "grn_Latn": 1.09, "guj_Gujr": 2.49,
    "hat_Latn": 0.94, "hau_Latn": 1.07, "heb_Hebr": 1.38, "hin_Deva": 2.56, "hne_Deva": 2.47,
    "hrv_Latn": 1.01, "hun_Latn": 1.14, "hye_Armn": 2.03, "ibo_Latn": 1.19, "ilo_Latn": 1.22,
    "ind_Latn": 1.08, "isl_Latn": 1.09, "ita_Latn": 1.18, "jav_Latn": 1.04, "jpn_Jpan": 1.28,
    "kab_Latn": 1.06, "kac_Latn": 1.27, "kam_Latn": 1.01, "kan_Knda": 2.85, "kas_Arab": 1.73,
    "kas_Deva": 2.41, "kat_Geor": 2.94, "kaz_Cyrl": 1.88, "kbp_Latn": 1.38, "kea_Latn": 1.02,
    "khk_Cyrl": 1.92, "khm_Khmr": 3.38, "kik_Latn": 1.28, "kin_Latn": 1.13, "kir_Cyrl": 1.87,
    "kmb_Latn": 1.1, "kmr_Latn": 1.1, "knc_Arab": 1.62, "knc_Latn": 1.09, "kon_Latn": 1.14, "kor_Hang": 1.2,
    "lao_Laoo": 2.72, "lij_Latn": 1.16, "lim_Latn": 1.07, "lin_Latn": 1.08, "lit_Latn": 1.07,
    "lmo_Latn": 1.16, "ltg_Latn": 1.05, "ltz_Latn": 1.15, "lua_Latn": 1.07, "lug_Latn": 1.03,
    "luo_Latn": 1.04, "lus_Latn": 1.08, "lvs_Latn": 1.11, "mag_Deva": 2.48, "mai_Deva": 2.53,
    "mal_Mlym": 3.11, "mar_Deva": 2.68, "min_Arab": 1.72, "min_Latn": 1.06, "mkd_Cyrl": 1.88,
    "mlt_Latn": 1.15, "mni_Beng": 2.77, "mos_Latn": 1.04, "mri_Latn": 1.16, "mya_Mymr": 3.54,
    "nld_Latn": 1.11, "nno_Latn": 1.03, "nob_Latn": 1.04, "npi_Deva": 2.57, "nso_Latn": 1.17,
    "nus_Latn": 1.32, "nya_Latn": 1.13, "oci_Latn": 1.17, "ory_Orya": 2.76, "pag_Latn": 1.02,
    "pan_Guru": 2.59, "pap_Latn": 1.07, "pbt_Arab": 1.69, "pes_Arab": 1.71, "plt_Latn": 1.26,
    "pol_Latn": 1.12, "por_Latn": 1.11, "prs_Arab": 1.63, "quy_Latn": 1.08, "ron_Latn": 1.18,
    "run_Latn": 1.11, "rus_Cyrl": 1.98, "sag_Latn": 1.1, "san_Deva": 2.64, "sat_Olck": 2.82,
    "scn_Latn": 1.11, "shn_Mymr": 3.94, "sin_Sinh": 2.68, "slk_Latn": 1.1, "slv_Latn": 1.02,
    "smo_Latn": 1.21, "sna_Latn": 1.12, "snd_Arab": 1.59, "som_Latn": 1.13, "sot_Latn": 1.2, "spa_Latn": 1.2,
    "srd_Latn": 1.2, "srp_Cyrl": 1.79, "ssw_Latn": 1.11, "sun_Latn": 1.05, "swe_Latn": 1.05,
    "swh_Latn": 1.05, "szl_Latn": 1.11, "tam_Taml": 3.19, "taq_Latn": 1.02, "taq_Tfng": 2.31,
    "tat_Cyrl": 1.84, "tel_Telu": 2.7, "tgk_Cyrl": 2.01, "tgl_Latn": 1.26, "tha_Thai": 2.76,
    "tir_Ethi": 1.74, "tpi_Latn": 1.28, "tsn_Latn": 1.25, "tso_Latn": 1.2, "tuk_Latn": 1.17,
    "tum_Latn": 1.29, "tur_Latn": 1.11, "twi_Latn": 1.04, "tzm_Tfng": 2.28, "uig_Arab": 1.96,
    "ukr_Cyrl": 1.87, "umb_Latn": 1.05, "urd_Arab": 1.76, "uzn_Latn": 1.13, "vec_Latn": 1.06,
    "vie_Latn": 1.39, "war_Latn": 1.24, "wol_Latn": 1.0, "xho_Latn": 1.06, "ydd_Hebr": 1.94,
    "yor_Latn": 1.28, "yue_Hant": 0.87, "zho_Hans": 0.93, "zho_Hant": 0.88, "zsm_Latn": 1.12,
    "zul_Latn": 1.12,
}


def english_equivalent_length(text: str, lang: str | None) -> float:
    """UTF-8 length of `text` divided by its language's factor (1.0 for unknown languages)."""
    return len(text.encode()) / BYTES_PER_ENGLISH_BYTE.get(lang or "", 1.0)


def measure_length_factors(flores_root: str, split: str = "dev") -> dict[str, float]:
    """The table above, measured on a FLORES-200 folder (needs eng_Latn)."""
    from bayling.corpus import read_flores_multiway

    ratios: dict[str, list[float]] = {}
    for _, texts in read_flores_multiway(flores_root, split):
        english = len(texts["eng_Latn"].encode())
        for code, text in texts.items():
            ratios.setdefault(code, []).append(len(text.encode()) / english)
    return {code: round(statistics.median(r), 2) for code, r in sorted(ratios.items())}

