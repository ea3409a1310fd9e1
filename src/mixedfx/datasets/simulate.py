"""Documented generators of the clustered data sets of the worked examples.

Each function draws one data set from a known mixed model with numpy's default generator
and a seed, so the examples are reproducible and their true parameters are known:
compare what a fit recovers with the arguments given here.

- :func:`schools`: students in schools (random intercept).
- :func:`districts`: students in classes in schools in districts (nested).
- :func:`patents`: patents judged by applicant x examiner x technology (crossed).
- :func:`income_slopes`: income slopes varying by school (correlated intercept and slope).
- :func:`binary_outcomes`: pass/fail and counts per student in schools (GLMM examples).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _labels(prefix: str, n: int) -> pd.Categorical:
    width = len(str(n))
    names = [f"{prefix}{k + 1:0{width}d}" for k in range(n)]
    return pd.Categorical(names, categories=names)


def schools(n_schools: int = 40, students: tuple[int, int] = (10, 40), *, mean: float = 50.0,
            sd_school: float = 5.0, sd_student: float = 10.0, seed: int = 1) -> pd.DataFrame:
    """Test scores of students in schools: ``score = mean + u_school + e``.

    Parameters
    ----------
    n_schools : int
        Number of schools.
    students : (int, int)
        Range (inclusive) of the number of students per school, drawn uniformly (unbalanced).
    mean, sd_school, sd_student : float
        Grand mean, sd of the school effects and of the students within schools. The
        intraclass correlation is ``sd_school**2 / (sd_school**2 + sd_student**2)``.
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``score`` and ``school`` (categorical).
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(students[0], students[1] + 1, size=n_schools)
    school = np.repeat(np.arange(n_schools), sizes)
    u = rng.normal(0.0, sd_school, n_schools)
    score = mean + u[school] + rng.normal(0.0, sd_student, len(school))
    return pd.DataFrame({"score": score,
                         "school": _labels("S", n_schools)[school]})


def districts(n_districts: int = 10, schools_per: int = 5, classes_per: int = 4,
              students: tuple[int, int] = (15, 30), *, sd_district: float = 3.0,
              sd_school: float = 4.0, sd_class: float = 2.0, sd_student: float = 8.0,
              effect_ses: float = 2.5, seed: int = 2) -> pd.DataFrame:
    """Students in classes in schools in districts (nested random intercepts).

    ``score = 60 + effect_ses * ses + u_district + u_school + u_class + e`` with ``ses`` a
    standard normal covariate. School and class labels repeat across their parents (class
    ``C1`` exists in every school), as in real registers, so the nesting must be written
    ``(1 | district/school/class)``.

    Returns
    -------
    pandas.DataFrame
        Columns ``score, ses, district, school, class``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_districts):
        ud = rng.normal(0.0, sd_district)
        for s in range(schools_per):
            us = rng.normal(0.0, sd_school)
            for c in range(classes_per):
                uc = rng.normal(0.0, sd_class)
                n = int(rng.integers(students[0], students[1] + 1))
                ses = rng.normal(size=n)
                score = 60 + effect_ses * ses + ud + us + uc + rng.normal(0, sd_student, n)
                rows.append(pd.DataFrame({"score": score, "ses": ses, "district": f"D{d + 1}",
                                          "school": f"S{s + 1}", "class": f"C{c + 1}"}))
    out = pd.concat(rows, ignore_index=True)
    for col in ("district", "school", "class"):
        levels = sorted(out[col].unique(), key=lambda v: int(v[1:]))
        out[col] = pd.Categorical(out[col], categories=levels)
    return out


def patents(n: int = 6000, applicants: int = 300, examiners: int = 120, technologies: int = 25,
            *, sd_applicant: float = 0.6, sd_examiner: float = 0.4, sd_technology: float = 0.5,
            sd_residual: float = 1.0, effect_claims: float = 0.15, seed: int = 3
            ) -> pd.DataFrame:
    """Patent quality scores judged by applicant x examiner x technology (crossed factors).

    Every patent has one applicant, one examiner and one technology class, drawn
    independently (examiners are not nested in technologies), so the three factors are
    crossed and unbalanced. ``quality = 2 + effect_claims * claims_std + u_applicant +
    u_examiner + u_technology + e``, with ``claims`` the number of claims (Poisson, mean 12)
    and ``claims_std`` its standardized value. Applicants file with Zipf-like frequencies.

    Returns
    -------
    pandas.DataFrame
        Columns ``quality, claims, applicant, examiner, technology``.
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, applicants + 1) ** 0.8
    applicant = rng.choice(applicants, size=n, p=weights / weights.sum())
    examiner = rng.integers(examiners, size=n)
    technology = rng.integers(technologies, size=n)
    claims = rng.poisson(12, size=n)
    z = (claims - claims.mean()) / claims.std()
    quality = (2.0 + effect_claims * z + rng.normal(0, sd_applicant, applicants)[applicant]
               + rng.normal(0, sd_examiner, examiners)[examiner]
               + rng.normal(0, sd_technology, technologies)[technology]
               + rng.normal(0, sd_residual, n))
    return pd.DataFrame({"quality": quality, "claims": claims,
                         "applicant": _labels("A", applicants)[applicant],
                         "examiner": _labels("E", examiners)[examiner],
                         "technology": _labels("T", technologies)[technology]})


def income_slopes(n_schools: int = 60, students: tuple[int, int] = (8, 30), *,
                  slope: float = 3.0, sd_intercept: float = 6.0, sd_slope: float = 1.5,
                  correlation: float = -0.5, sd_student: float = 7.0, seed: int = 4
                  ) -> pd.DataFrame:
    """Scores against family income (in units of 10,000) with a slope varying by school.

    ``score = 40 + slope * income + a_school + b_school * income + e`` with (a, b) bivariate
    normal (sds ``sd_intercept``, ``sd_slope``, correlation ``correlation``): schools where
    scores are high on average depend less on income when the correlation is negative.

    Returns
    -------
    pandas.DataFrame
        Columns ``score, income, school``.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(students[0], students[1] + 1, size=n_schools)
    school = np.repeat(np.arange(n_schools), sizes)
    cov = np.array([[sd_intercept**2, correlation * sd_intercept * sd_slope],
                    [correlation * sd_intercept * sd_slope, sd_slope**2]])
    ab = rng.multivariate_normal([0.0, 0.0], cov, size=n_schools)
    income = rng.gamma(4.0, 1.2, size=len(school))
    score = (40 + slope * income + ab[school, 0] + ab[school, 1] * income
             + rng.normal(0, sd_student, len(school)))
    return pd.DataFrame({"score": score, "income": income,
                         "school": _labels("S", n_schools)[school]})


def binary_outcomes(n_schools: int = 50, students: tuple[int, int] = (10, 40), *,
                    intercept: float = -0.5, effect_hours: float = 0.4, sd_school: float = 1.2,
                    seed: int = 5) -> pd.DataFrame:
    """Pass/fail and absence counts of students in schools (logit and log GLMMs).

    ``P(pass) = logistic(intercept + effect_hours * hours + u_school)``, and
    ``absences ~ Poisson(exp(1 - 0.1 * hours + v_school))`` with ``u`` and ``v`` normal
    (sds ``sd_school`` and ``sd_school / 2``); ``hours`` of study per week, centred at 5.

    Returns
    -------
    pandas.DataFrame
        Columns ``passed`` (0/1), ``absences`` (count), ``hours``, ``school``.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(students[0], students[1] + 1, size=n_schools)
    school = np.repeat(np.arange(n_schools), sizes)
    hours = rng.uniform(0, 10, size=len(school)) - 5.0
    u = rng.normal(0, sd_school, n_schools)
    v = rng.normal(0, sd_school / 2, n_schools)
    eta = intercept + effect_hours * hours + u[school]
    passed = (rng.uniform(size=len(school)) < 1 / (1 + np.exp(-eta))).astype(int)
    absences = rng.poisson(np.exp(1.0 - 0.1 * hours + v[school]))
    return pd.DataFrame({"passed": passed, "absences": absences, "hours": hours,
                         "school": _labels("S", n_schools)[school]})
