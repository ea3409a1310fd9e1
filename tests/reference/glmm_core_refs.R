# References for the GLMM core (Laplace, nAGQ = 0, AGQ): lme4 fits with a tight PIRLS
# tolerance (tolPwrss 1e-12) and a tight optimizer end (rhoend 1e-10), so that they are the
# optimum of the exact Laplace / AGQ deviance, not lme4's default early stop; plus the
# saturated log-likelihood (loglik_constant) that lme4 leaves out of its nAGQ > 1 values:
# lme4's nAGQ > 1 loglik + loglik_constant is the log-likelihood with all constants.
# Run from the repository root: Rscript tests/reference/glmm_core_refs.R
source("tests/reference/common.R")
out <- "tests/reference"
ctl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12,
                    optCtrl = list(maxfun = 1e5, rhoend = 1e-10))
tight <- function(name, data, formula, family, nAGQ = 1, constant = 0) {
  m <- glmer(as.formula(formula), data = data, family = family, nAGQ = nAGQ, control = ctl)
  list(name = name, kind = "glmm", formula = formula, family = family$family,
       link = family$link, nAGQ = nAGQ, nobs = nobs(m), ngroups = as.list(ngrps(m)),
       fixef = as.list(fixef(m)), se = as.list(sqrt(diag(as.matrix(vcov(m))))),
       varcorr = vc_list(m), theta = unname(getME(m, "theta")),
       loglik = as.numeric(logLik(m)), loglik_constant = constant,
       deviance = as.numeric(deviance(m)), singular = isSingular(m), ranef = ranef_list(m),
       software = paste("lme4", packageVersion("lme4"), "tolPwrss 1e-12, rhoend 1e-10"))
}
cb <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
binconst <- sum(dbinom(cbpp$incidence, cbpp$size, cbpp$incidence / cbpp$size, log = TRUE))
refs <- list(
  tight("cbpp_laplace_tight", cbpp, cb, binomial()),
  tight("cbpp_nagq0_tight", cbpp, cb, binomial(), nAGQ = 0),
  tight("cbpp_agq25_tight", cbpp, cb, binomial(), nAGQ = 25, constant = binconst),
  tight("cbpp_agq5_tight", cbpp, cb, binomial(), nAGQ = 5, constant = binconst),
  tight("cbpp_probit_tight", cbpp, cb, binomial("probit")),
  tight("verbagg_laplace_tight", VerbAgg,
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", binomial())
)
# Poisson with a vector random effect (simulated, written to counts_core.csv)
set.seed(11)
g <- factor(rep(1:30, each = 12)); x <- rep(seq(-1, 1, length.out = 12), 30)
b0 <- rnorm(30, 0, 0.6); b1 <- rnorm(30, 0, 0.3)
pois <- data.frame(g = g, x = x, y = rpois(360, exp(0.4 + 0.5 * x + b0[g] + b1[g] * x)))
write.csv(pois, file.path(out, "counts_core.csv"), row.names = FALSE)
refs[[length(refs) + 1]] <- tight("poisson_slope_tight", pois, "y ~ x + (1 + x | g)", poisson())
for (r in refs) write_ref(r, out)
