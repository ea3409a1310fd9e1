# lme4 reference for a Poisson GLMM on mixedfx.datasets.simulate.binary_outcomes(seed=5),
# written to tests/reference/binary_outcomes_seed5.csv by the test module's generator.
# Run: Rscript tests/reference/glmm_counts_refs.R  (from the repository root)
suppressMessages({library(lme4); library(jsonlite)})
d <- read.csv("tests/reference/binary_outcomes_seed5.csv")
d$school <- factor(d$school)
m <- glmer(absences ~ hours + (1 | school), d, family = poisson,
           control = glmerControl(tolPwrss = 1e-12))
out <- list(fixef = as.list(fixef(m)), sd_school = attr(VarCorr(m)$school, "stddev")[[1]],
            loglik = as.numeric(logLik(m)), se = as.list(sqrt(diag(as.matrix(vcov(m))))))
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/glmm_counts.json")
