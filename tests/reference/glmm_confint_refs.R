# lme4 profile confidence intervals of GLMMs (Laplace), as confint(fit, oldNames = FALSE).
# Run: Rscript tests/reference/glmm_confint_refs.R  (from the repository root)
suppressMessages({library(lme4); library(jsonlite)})
ctl <- glmerControl(tolPwrss = 1e-12, optimizer = "bobyqa",
                    optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
ci <- function(m) {
  p <- profile(m, signames = FALSE, delta = 0.1, maxpts = 200)
  out <- confint(p, level = 0.95)
  list(names = rownames(out), lower = unname(out[, 1]), upper = unname(out[, 2]))
}
# cbpp: lme4's own copy (the bundled cbpp.csv is the same data)
m1 <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp,
            family = binomial, control = ctl)
d <- read.csv("tests/reference/binary_outcomes_seed5.csv")
d$school <- factor(d$school)
m2 <- glmer(absences ~ hours + (1 | school), d, family = poisson, control = ctl)
s <- read.csv("tests/reference/counts_core.csv")
s$g <- factor(s$g)
m3 <- glmer(y ~ x + (1 + x | g), s, family = poisson, control = ctl)
out <- list(cbpp = ci(m1), counts = ci(m2), slopes = ci(m3))
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/glmm_confint.json")
