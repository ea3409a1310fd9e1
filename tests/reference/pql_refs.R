# MASS::glmmPQL references beyond cbpp_pql (tests/test_pql.py): nested Poisson with
# covariates at the site, plot and observation levels (containment df), a binomial model
# with a correlated random slope, a Gamma log-link and a binomial probit model.
# Data: counts_sim.csv (written by negbin_refs.R).
# Run from this folder: Rscript pql_refs.R
suppressMessages({library(MASS); library(nlme); library(jsonlite)})
d <- read.csv("counts_sim.csv", stringsAsFactors=TRUE)
pql <- function(name, formula, fixed, random, family) {
  m <- glmmPQL(as.formula(fixed), random=as.formula(random), family=family, data=d,
               verbose=FALSE)
  tt <- summary(m)$tTable
  covs <- lapply(pdMatrix(m$modelStruct$reStruct), function(x) unname(x * m$sigma^2))
  list(name=name, formula=formula, family=family$family, fixed=fixed, random=random,
       fixef=as.list(fixef(m)), se=as.list(setNames(tt[, "Std.Error"], rownames(tt))),
       df=as.list(setNames(tt[, "DF"], rownames(tt))), sigma=m$sigma, re_cov=covs,
       fitted_link=unname(fitted(m))[1:12])
}
out <- list(
  pql("poisson_nested", "y ~ x + z + trt + (1 | site/plot)", "y ~ x + z + trt", "~ 1 | site/plot",
      poisson()),
  pql("binomial_slope", "yb ~ x + z + (x | site)", "yb ~ x + z", "~ x | site", binomial()),
  pql("gamma_log", "I(y + 0.5) ~ x + trt + (1 | site)", "I(y + 0.5) ~ x + trt", "~ 1 | site",
      Gamma(link="log")),
  pql("binomial_probit", "yb ~ x + z + (1 | site)", "yb ~ x + z", "~ 1 | site",
      binomial(link="probit")))
# an offset (exposure): cbpp incidences per herd size, Poisson
d <- read.csv("../../src/mixedfx/datasets/data/cbpp.csv")
d$herd <- factor(d$herd); d$period <- factor(d$period)
out[[length(out) + 1]] <- pql("cbpp_poisson_offset", "incidence ~ period + (1 | herd)",
                              "incidence ~ period + offset(log(size))", "~ 1 | herd", poisson())
names(out) <- sapply(out, function(x) x$name)
out$software <- paste("MASS", packageVersion("MASS"), "nlme", packageVersion("nlme"))
write(toJSON(out, auto_unbox=TRUE, digits=NA, pretty=TRUE), "pql_refs.json")
