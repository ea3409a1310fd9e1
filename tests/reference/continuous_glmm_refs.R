# lme4 references for Gamma and inverse Gaussian GLMMs (log link, Laplace) on simulated
# data written by `python -m tests.test_glmm_continuous` (gamma_sim.csv,
# invgauss_sim.csv). Run: Rscript tests/reference/continuous_glmm_refs.R (repository root)
suppressMessages({library(lme4); library(jsonlite)})
fit <- function(file, fam) {
  d <- read.csv(file)
  d$g <- factor(d$g)
  m <- glmer(y ~ x + (1 | g), d, family = fam,
             control = glmerControl(tolPwrss = 1e-12, optimizer = "bobyqa",
                                    optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
  list(fixef = as.list(fixef(m)), theta = unname(getME(m, "theta")),
       sd_g = attr(VarCorr(m)$g, "stddev")[[1]], sigma = sigma(m),
       loglik = as.numeric(logLik(m)), deviance = deviance(m),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))))
}
out <- list(gamma_log = fit("tests/reference/gamma_sim.csv", Gamma(link = "log")),
            invgauss_log = fit("tests/reference/invgauss_sim.csv",
                               inverse.gaussian(link = "log")))
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, pretty = TRUE),
           "tests/reference/continuous_glmm.json")
