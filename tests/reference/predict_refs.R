# Reference predictions for tests/test_predict.py: lme4's predict() on new data.
# Run from this folder: Rscript predict_refs.R   (writes predict_refs.json here)
suppressMessages({library(lme4); library(jsonlite)})
dd <- "../../src/mixedfx/datasets/data"
rd <- function(name) read.csv(file.path(dd, paste0(name, ".csv")), stringsAsFactors=TRUE)
ctrl <- lmerControl(optimizer="bobyqa", optCtrl=list(maxfun=1e5))

case <- function(name, formula, data, newdata, REML=TRUE) {
  m <- lmer(as.formula(formula), data=data, REML=REML, control=ctrl)
  list(name=name, formula=formula, reml=REML, newdata=newdata,
       conditional=unname(predict(m, newdata=newdata, allow.new.levels=TRUE)),
       fixed=unname(predict(m, newdata=newdata, re.form=NA)),
       fitted=unname(predict(m)), fixef=as.list(fixef(m)))
}

ss <- rd("sleepstudy"); ss$Subject <- factor(ss$Subject)
oo <- rd("Orthodont"); oo$Sex <- factor(oo$Sex, levels=c("Male", "Female"))
pa <- rd("Pastes"); pe <- rd("Penicillin")

out <- list(
  case("sleepstudy", "Reaction ~ Days + (Days | Subject)", ss,
       data.frame(Days=c(0, 2.5, 9, 4, 1), Subject=c("308", "333", "372", "999", "999"))),
  case("sleepstudy_quadratic_zerocorr", "Reaction ~ Days + I(Days^2) + (Days || Subject)", ss,
       data.frame(Days=c(0, 3.5, 8, 5), Subject=c("309", "351", "999", "370"))),
  case("orthodont_interaction", "distance ~ age * Sex + (age | Subject)", oo,
       data.frame(age=c(8, 11, 14, 9.5), Sex=c("Female", "Female", "Female", "Female"),
                  Subject=c("F01", "F11", "F99", "F05")), REML=FALSE),
  case("pastes_nested", "strength ~ 1 + (1 | batch/cask)", pa,
       data.frame(batch=c("A", "A", "K", "J", "C"), cask=c("a", "d", "a", "c", "b"))),
  case("penicillin_crossed", "diameter ~ 1 + (1 | plate) + (1 | sample)", pe,
       data.frame(plate=c("a", "x", "w", "zz"), sample=c("F", "B", "Q", "Q")))
)
cb <- rd("cbpp"); cb$herd <- factor(cb$herd); cb$period <- factor(cb$period)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), data=cb, family=binomial,
           control=glmerControl(optimizer="bobyqa", optCtrl=list(maxfun=1e5)))
nd <- data.frame(period=c("1", "2", "3", "4", "1"), herd=c("1", "7", "15", "99", "99"))
out[[length(out) + 1]] <- list(name="cbpp_glmer",
  formula="cbind(incidence, size - incidence) ~ period + (1 | herd)", newdata=nd,
  conditional=unname(predict(g, newdata=nd, allow.new.levels=TRUE, type="response")),
  conditional_link=unname(predict(g, newdata=nd, allow.new.levels=TRUE)),
  fixed=unname(predict(g, newdata=nd, re.form=NA, type="response")),
  fitted=unname(predict(g, type="response")), fixef=as.list(fixef(g)))
names(out) <- sapply(out, function(x) x$name)
out$software <- paste("lme4", packageVersion("lme4"))
write(toJSON(out, auto_unbox=TRUE, digits=NA, pretty=TRUE, dataframe="columns"), "predict_refs.json")
