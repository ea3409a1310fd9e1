# R's sequential ANOVA (anova(lm(...))) and lme4's variance components for mixedfx's
# anova_table / variance_decomposition tests. Generates an unbalanced crossed data set
# (operators x machines, 0-4 runs per cell, a covariate and a two-level factor), saves it as
# decomposition_crossed.csv and the results as decomposition_refs.json.
# Run from this folder:  Rscript decomposition_refs.R
suppressMessages({library(lme4); library(jsonlite)})
set.seed(20261125)
cells <- expand.grid(a = sprintf("o%d", 1:6), b = sprintf("m%d", 1:5), stringsAsFactors = FALSE)
reps <- sample(0:4, nrow(cells), replace = TRUE, prob = c(0.15, 0.25, 0.25, 0.2, 0.15))
d <- cells[rep(seq_len(nrow(cells)), reps), ]
rownames(d) <- NULL
n <- nrow(d)
a_eff <- setNames(rnorm(6, sd = 2), sprintf("o%d", 1:6))
b_eff <- setNames(rnorm(5, sd = 1.5), sprintf("m%d", 1:5))
slope <- setNames(rnorm(6, sd = 0.3), sprintf("o%d", 1:6))
d$x <- round(runif(n, 0, 10), 3)
d$f <- sample(c("lo", "hi"), n, replace = TRUE)
d$y <- round(10 + 0.5 * d$x + (d$f == "hi") * 1 + a_eff[d$a] + b_eff[d$b] +
             slope[d$a] * d$x + rnorm(n, sd = 1), 4)
write.csv(d, "decomposition_crossed.csv", row.names = FALSE)
d <- read.csv("decomposition_crossed.csv")  # exactly the values the tests read

tab <- function(formula) {
  a <- anova(lm(as.formula(formula), data = d))
  list(formula = formula, terms = rownames(a), df = a$Df, sum_sq = a[["Sum Sq"]],
       mean_sq = a[["Mean Sq"]], F = a[["F value"]], p_value = a[["Pr(>F)"]])
}
vc <- function(formula) {
  m <- lmer(as.formula(formula), data = d, REML = TRUE,
            control = lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
  v <- as.data.frame(VarCorr(m))
  list(formula = formula, group = v$grp, term1 = v$var1, vcov = v$vcov, sdcor = v$sdcor)
}
out <- list(
  nobs = n,
  anova = list(
    ab = tab("y ~ x + a + b"),
    ba = tab("y ~ x + b + a"),
    slope = tab("y ~ x + a + x:a + b"),
    nested = tab("y ~ a/b"),
    factor = tab("y ~ x * f + a")
  ),
  lmer = list(
    ab = vc("y ~ x + (1 | a) + (1 | b)"),
    ba = vc("y ~ x + (1 | b) + (1 | a)")
  ),
  software = paste("R", getRversion(), "lme4", packageVersion("lme4"))
)
write_json(out, "decomposition_refs.json", digits = NA, auto_unbox = TRUE, pretty = TRUE,
           na = "null")
