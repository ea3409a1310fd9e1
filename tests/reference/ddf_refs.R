# Satterthwaite (lmerTest) and Kenward-Roger (pbkrtest via lmerTest) references beyond the
# balanced cases of shared_refs.R. Run from the repository root:
#   Rscript tests/reference/ddf_refs.R
# Data: ddf_sleep_unbalanced.csv (sleepstudy minus a random quarter of its rows, with a
# 3-level factor 'period' from Days and a noise covariate 'dose'; written by
# tests/test_inference_ddf.py's generator comment), bundled Penicillin.
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
u <- read.csv("tests/reference/ddf_sleep_unbalanced.csv")
u$Subject <- factor(u$Subject)
u$period <- factor(u$period, levels = c("early", "middle", "late"))
pen <- read.csv("../shared/datasets/Penicillin.csv")
pen$plate <- factor(pen$plate); pen$sample <- factor(pen$sample)
cases <- list(
  list(name = "unbalanced_slopes_reml", formula = "Reaction ~ Days + dose + (Days | Subject)",
       data = "u", REML = TRUE),
  list(name = "unbalanced_slopes_ml", formula = "Reaction ~ Days + dose + (Days | Subject)",
       data = "u", REML = FALSE),
  list(name = "unbalanced_factor_reml", formula = "Reaction ~ period + dose + (1 | Subject)",
       data = "u", REML = TRUE),
  list(name = "penicillin_crossed", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
       data = "pen", REML = TRUE)
)
out <- list()
for (cs in cases) {
  d <- get(cs$data)
  m <- lmer(as.formula(cs$formula), data = d, REML = cs$REML,
            control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10)))
  co <- summary(m, ddf = "Satterthwaite")$coefficients
  res <- list(formula = cs$formula, reml = cs$REML,
              satterthwaite = list(df = as.list(co[, "df"]), t = as.list(co[, "t value"]),
                                   p = as.list(co[, "Pr(>|t|)"])))
  if (length(attr(terms(m), "term.labels")) > 0) {
    a <- anova(m, ddf = "Satterthwaite", type = 3)
    res$anova_satterthwaite <- list(terms = rownames(a), F = a[["F value"]],
                                    num_df = a[["NumDF"]], den_df = a[["DenDF"]])
  }
  if (cs$REML) {
    ck <- summary(m, ddf = "Kenward-Roger")$coefficients
    res$kenward_roger <- list(df = as.list(ck[, "df"]), se = as.list(ck[, "Std. Error"]))
    if (length(attr(terms(m), "term.labels")) > 0) {
      ak <- anova(m, ddf = "Kenward-Roger", type = 3)
      res$anova_kenward_roger <- list(terms = rownames(ak), F = ak[["F value"]],
                                      num_df = ak[["NumDF"]], den_df = ak[["DenDF"]])
    }
  }
  out[[cs$name]] <- res
}
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/ddf_refs.json")
