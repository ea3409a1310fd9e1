# nlme references for residual structures beyond shared_refs.R (CAR1, CompSymm, varPower, ML,
# combined correlation and variance). Run from this folder:  Rscript residual_refs.R .
source("common.R")
out <- commandArgs(TRUE)[1]
ov <- as.data.frame(Ovary); ov$Mare <- as.character(ov$Mare)
oo <- as.data.frame(Orthodont); oo$Subject <- as.character(oo$Subject)
pa <- as.data.frame(Pastes)
ov$Time22 <- ov$Time * 22

write_ref(lme_ref("ovary_car1", ov, "follicles ~ sin(2*pi*Time) + cos(2*pi*Time)", "~ 1 | Mare",
                  correlation=corCAR1(form = ~ Time22 | Mare),
                  desc="random intercept per Mare; continuous-time AR(1) in Time22 = 22 * Time (about days) within Mare"), out)
write_ref(lme_ref("ovary_ar1_ml", ov, "follicles ~ sin(2*pi*Time) + cos(2*pi*Time)", "~ 1 | Mare",
                  correlation=corAR1(), method="ML",
                  desc="random intercept per Mare; AR(1) residuals within Mare; ML"), out)
write_ref(lme_ref("pastes_compsymm", pa, "strength ~ 1", "~ 1 | batch",
                  correlation=corCompSymm(form = ~ 1 | batch/cask),
                  desc="random intercept per batch; compound symmetry within cask (batch:cask)"), out)
write_ref(lme_ref("orthodont_varpower_fitted", oo, "distance ~ age", "~ 1 | Subject",
                  weights=varPower(),
                  desc="random intercept per Subject; residual sd ~ |fitted|^power"), out)
write_ref(lme_ref("orthodont_varpower_age", oo, "distance ~ age", "~ 1 | Subject",
                  weights=varPower(form = ~ age),
                  desc="random intercept per Subject; residual sd ~ age^power"), out)
write_ref(lme_ref("orthodont_ar1_varident_ml", oo, "distance ~ age + Sex", "~ 1 | Subject",
                  correlation=corAR1(), weights=varIdent(form = ~ 1 | Sex), method="ML",
                  desc="random intercept per Subject; AR(1) within Subject and sd by Sex; ML"), out)
# nlme stops its alternation for varPower(~fitted(.)) before the fixed point (Orthodont: power
# 1.10600 where the fixed point is 1.10639, sigma 1.5e-3 apart; sleepstudy: 2.656 against 2.602).
# Iterate lme with the fitted values held fixed as a covariate until the power settles, and
# record that fit as well.
varpower_fixed_point <- function(name, data, fixed, random, desc) {
  data$fit0 <- fitted(lme(as.formula(fixed), random = as.formula(random), data = data,
                          weights = varPower(), control = lmeControl(maxIter = 500, msMaxIter = 500)))
  old <- Inf
  for (i in 1:100) {
    m <- lme(as.formula(fixed), random = as.formula(random), data = data,
             weights = varPower(form = ~ fit0),
             control = lmeControl(maxIter = 200, msMaxIter = 200, tolerance = 1e-10))
    pw <- coef(m$modelStruct$varStruct, unconstrained = FALSE)
    data$fit0 <- fitted(m)
    if (abs(pw - old) < 1e-8) break
    old <- pw
  }
  lme_ref(name, data, fixed, random, weights = varPower(form = ~ fit0),
          desc = paste(desc, "; varPower(~fitted(.)) at the fixed point: lme with the fitted values",
                       "as a fixed covariate, iterated", i, "times (stop: power change < 1e-8, at most 100)"))
}
write_ref(varpower_fixed_point("orthodont_varpower_fixedpoint", oo, "distance ~ age", "~ 1 | Subject",
                               "random intercept per Subject"), out)
ss <- as.data.frame(sleepstudy); ss$Subject <- as.character(ss$Subject)
write_ref(varpower_fixed_point("sleepstudy_varpower_fixedpoint", ss, "Reaction ~ Days",
                               "~ Days | Subject", "correlated random intercept and slope per Subject"), out)
