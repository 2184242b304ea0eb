"""Tests of skyfit.io.hal: 3ML HAL (hawc_hal) maptrees and responses, ROOT and HDF5.

Independent references used here:

* ``PANDAS_*``: small HDF5 files written by pandas 3.1.1 / PyTables 3.11.1 exactly as hawc_hal's
  ``MapTree.write`` and ``HAWCResponse.write`` do (``HDFStore.put(key, frame, format="fixed")`` and
  ``attrs.metadata``), stored lzma + base85. The maptree holds bins "0", "1" on RING pixels
  5, 7, 100, 101 of nside 4 (observation ``arange(4) + 10 i``, background ``0.5 arange(4) + i``,
  ``n_transits`` 12.5, a ``HealpixConeROI`` dict); ``PANDAS_MAPTREE_BLOSC`` is the same with hawc_hal's
  default ``blosc:zstd`` compression. The response has bands at -5 and 20 deg (+-12.5 deg), bins
  "0", "1", energies 0.5, 1, 2, 4 TeV with ``sim_differential_photon_fluxes = 1e-11 E^-2.5`` and
  ``sim_signal_events_per_bin = (j + 1)(dec + 10)[1, 2, 3, 4]`` for bin j, a Gaussian PSF of
  sigma ``0.5 / (j + 1)`` deg sampled at 30 radii (``ys = r exp(-r^2 / 2 sigma^2)``) and no PSF rows
  (hawc_hal's ``InvalidPSF``) for bin "1" at 20 deg.
* the public ``hawc_hal/geminga_response.root`` (HAWC, via 3ML's hawc_hal test data), read here
  straight with uproot.
"""

from __future__ import annotations

import base64
import lzma
import re
import shutil

import healpy as hp
import numpy as np
import pytest
from scipy.optimize import brentq

from skyfit.io.hal import (
    HALFormatError,
    HALPSFFallbackWarning,
    hal_response_root_to_hdf5,
    hal_response_table,
    maptree_dataset,
    read_hal_response,
    read_maptree,
    write_maptree,
)
from skyfit.maps import HealpixMaps, HealpixROI

PANDAS_MAPTREE = (
    "{Wp48S^xk9=GL@E0stWa8~^|S5YJf5;J%j#dtCrTk_3crdV6<D#AZ)w9S?G89vI9Y80jC)!kXW6`E)h;T(_qfBirS{DSK5K2iE{PptPa2?kP*v"
    "%ctntNopYwAvlSkYpx(g{Hc_nv2;w(;6cFV6#=xu^%Zf<tTLD~OISOKGVbxuh%*wkGuz^UYao_dlB&oG@xcGquzuOckr7{#(U(u<fD$e0=z>Xf"
    "oj1KTx!WLbdeyfPBAhvLoK+IfTA{`q;Qz>?bE6-M^2r}+-"
    "GZ<HC;v{<ftiP;|H1FYgZ|G8$avRK#dL?+Yw<JJc|G(du1=k?RZEG&=!hk1VDDT5t+{8CV{Tj+MLhU+k;PmxZ{6-"
    "v|L*ihL@oH%BxM6oZ)Je_kTgPW$E1;IVkv4T>g0asaK!V!(J~7KZ2~Bn^^-"
    "D5^z1n)t}1kXg0BjY3`=Y9Ts$znlLwwVr5QFPAn3YSO{i7`5$%dbOcochUxXgR`pnx{9Phj2=FJ~pTb<vZye$*q9Z^IPu9q2wrZ4zX?SIxSP~O"
    "Q!9bDoWvX@5llDC5DVU%_@JR{n<_QE^vzckYFIsHpfw5VRVoD_V&<tO;ZX$gU~`5s)>ur6{c(Ycu7{1%;3kNBaJ?*4gBF)4G&9^<FY^;+8e<{G"
    "^)Cy7kuQagnNXQ}SCw`sg=FBPSnFy`Pro`g&9bz@5<LrW@uZ^m_c$Rj4@-ifOFCT{$4gR(}+HxRRv2F=}5@QZ_U%rR8vQ*9F9>@JmlJW-XWh`v"
    "kFg4kzo%4dp@xdKo*iTu(ZaBv#4z4UI4&b4Jn62Ql2aPzY|Dh5UO`7!82>R>x2$Pkkf7V}%JMSt29z;e+M;+t?Z&@(&5K;|W}X2btl?i}}b0YH"
    "2QrMQSNM-"
    "$~Eu$q;fy#Rt}sM0c8@!m3$Cu;v{8>NgfnXy)Q<^rJ0_!Bw6`ywzTNk*FLm4>8QVoo%$CxO;mwN$MBr<l}6;?bw=_=SVaraG^)>pz5$CqI&1LO"
    "Q}_#l^!Weq-`0I-yn9B>q5KKvyU2T~Dx4MP@>*Pn-6}qDT>vHD}4K1<kTIl$kZQxXGm`fXCrDGb6`-"
    "K^xJ&>&kKQN3Rz84D}KIQ&Wtn!cZd%08y<R(BE^AKPwx?qO@PKF0(5Sa`)l8A*S$DcgM4M*Rp9iW%ahF)EfbgCj3TqcgxCk?;g=fU1~^>0zfQS"
    "`FupbK)V<LO586_FU;^-h>5m22Eh%vp}imqpKU^@qHHj%U@a#hf8(b|=-"
    "0AXxM~xMr0BUY`y6hrJgFhi0)(ZTVb>BobgmrSljI_1A=Y&mT|*atVH3)hY*SG?cd)=GN36N)`ZGI>`TwEAP_kU<zo6b||K_-Tj*{H^6}M4qv@"
    "CE7CeWXtwhGwk__j2-gkO2)ctTwc+%7@#eaDhA*45$;JWVYmCeDn+HNu+}3VgM=l7<%@4^=1A4H3RaEIw&Tn!-"
    "sBOr%FrzepEgO*)q)Lt)c5<~|f;83ps;E~4()`;rP~c?CskPbH4J*(5xgY1IB3W*syBXrAfZw-!DIbef&VP-nE;R1@b>lQC)*b+fiJ&xA(A19P"
    "{pl0T=n+2mB=SA}^5=N1egI2>MmZP_#sdjp+ryk50!DkBdn!aABUQB?aE4v!3yWCv@^>RL<L^l~#VVF_4VL3835l#L5=hP7GIBUH^`zf#;gJue"
    "yfbH0F<LbWxqKc_v8hGmWmKx=e2(N+pJ{05ltLXz+_mHo3#wPGwK$kxWc^c?|r1k=6L>hnrcvm}Y6BRo{z3$Ji&RHsR;KL|~d1nJQcOZG?3fO@"
    ")hElx&xZ!%dWi5NDtxw^%!cN2n3&_rLbxeUzoJ3s5^cv#!J&$c8V1|c58Zx5o@+mReaOc!Zhq*Z9_JA|@3q$jcvwWnn8nZ}M>allKkvspzu5<i"
    "p5)|moZZ391c()?&+j}%>K&Nu0=<8Aip7-7xe=6V0j<DdYbXE8l~o9c-"
    "kFfrFEZ;WWR&CQj8t%D{fhBQK?>P3(u#^A@Xx(FT(=|0!g^dOWkG~RYxDaL<|ZqIEKp{2#&tbj2}(kI%gVBWc{KmlR|og(G!>PA5|!w5N)31Tr"
    "BsUARtvKc}V_3rQ`dKkCUlu($mIN#sF9Jz*|*1j5^|LXo*W~&BwIM>h4yb=qCSz0|Ub+CWN&sDCe3sX5SRW?tL5kj*gF<4sH6*BRDD!i*+28=m"
    "bVczl_`yXvCaCf3mT(vcD90$=NI-c0QPI+wasLiyHZ@c_GMbt=R2%j1<Ww~VcgCKvT893-"
    "K#=)nA@sniqpZvadr8Z5z@bbEUbwV|!#;PRHQrm@EMZ>nB&$DKcJRmTiS;}27=RV`FcEq{*EHkJq%4zP|tKf(PGJc4O;sf)V|5bKVgAlklEzlP"
    ")*Fv9?aqEX^P0xA6PC%$*QI0j=7WXMp2;kwdPt#=MrkDfm!dLeOz=ti8L-"
    ")O|urUQ*Wee>koxQ+7vM6{Oy}92nqK%t#1zwJ|j*b`7gL{mkvmTXr{qi9}XzalQ-H)lF^RH6j1A~D=Xu?Ne8w2iCrp2M~&;*Ql)-"
    "5`=(Q$!t^}m2pIJ8`Pu2TzmNFu+MyyVv!Q(pJ&5dKTj<?JCfO>fW2dHW7^d)!iISVe?*uaR0pxP;!n8PJ?3#qd>nC}<G?7i;n-"
    "$#YQHJQIS#CP^4p-y@-KVL;`wO;Y^%2X!a3onSZ7kw)C{P_aj6FyY+Vs=j-"
    "*FU~EK)$S($@Q{xKGYZVc@{bS$Q~CN`v~NOgyvcK!l3}|CLSv238Z>^r>;x0qU;p86J+Y!}Vc8t&&5_%|aFUG?#IZWW2Q&BVTDClPG=Mfb&M;I"
    "0&CvBBxcW}X`N#r$^wIzT4u1|(FJg(p00EZ~nEe6(UI%DtvBYQl0ssI200dcD"
)

PANDAS_MAPTREE_BLOSC = (
    "{Wp48S^xk9=GL@E0stWa8~^|S5YJf5;Ir2Vc3l8Ok_3crdV6<D#AZ)w9S?G89vI9YEuv@ldDYOJmo-"
    "?x$d!rFldNmP7gUIdnM$A6HT5<Q5|(u<*S4O-"
    "Gt5vtAvlSkYpx(g{Hc_nv2;w(#$7mOX_dzp3IoPwvdHcF(Lf*HZAI7R@UYHFDkd~@1}W_pijl2MIJ`;Mm}8i8Qv`%ULW3st3M~ybo{s!5hj`Ox"
    "_XR%`C<J*H+wfhi>f@a9jiCKKT3HPg{*Y;<ifI4G(>sK?5=y6Xe2SP%BpSErV8PlGM@|Rq9hqBnsIkgcmLQ)ZdiRW9QCCVHzy-"
    "<3%sFrGV3~)$1ukIptCRH>VT1ivOFkXcP{aS&Nhd4>e5t^>nw#98db4`dy_gGB@g*ibq#Oy=e4$DzLGlt~U!^MshI=yN%qCzW&jaK!S6dExZ)B"
    "PEXoSC9eoxpGdYCNk4ZT1UW>Uv$W8Z>jiME%LU~X~_Ug$NPIa9uNKie0Y$Pd$j#BxkmjDt8lS|a<_hk+Z90$-"
    ">c1oKo;=>~cuBeyNF>v;9&?hJTI9bAZDV<%+#_IW13v$n{)2Wr*S-@_hFDa5^}FH-oozv0N%6ZbdbDjnDFB}UIB?`gV1`1@^${F`$}lz}Ypv!S"
    "c^XpGD#bP5Cgawoz8Th{01_jIe8p59j!@xSi1Rx-*1skO-0EuUZ~)*TB_lI;(hKN;-)mTb>YDaZb{k57b-"
    "zq|I<C29FP+a(MlLblf=A!Xbqyag}YFdqs3XQlq_d6I9{H4&y=8*ZL-"
    "9}KV%`dT~U1ZF(7N=oT>w%xgJyYyvA_vI3X4r*4}9rEkq6wbgdBF2_fw!}cCI?+2f&{P~P9_!{_l>HY#85>O|F!)bYvSKV<_s%mT*>LLgOiamh"
    "@)TKe$IHabsh-kiK*p7fVIXB|0!+1fHHm$m?0U=dCGY;twENnNHg}BAhI$9lb{C)7#Aeu#PE((}Y>5*j_A$N`gJ7IMsBCfkVYv*|3%B(Zr5nm+"
    "QJ1%E3#CRv)nH<n-Q)2`PHnZRhs#gzmHz$+QRj_nMRxi`T2nqQOA+k^8=!pqCN~l&$JD<I)!n99TQ-"
    "3+E;4%5qy5sVEfr7x*6@;!ZhD3NT8RmIDrSs!V{R;hzS*&h6D_Tmwez(!vZse$>RK%pcMocr{C+p!PNRG!Lqnoyrf!}Na|QdOg;RpMT31BWhI}"
    "d|{St^iBWekjXp|L@3|cr*Q#Z1Me83lTs4@%N1rk#mnf652rrHTX41a`hVklC(JY8f_)wi1Ag(rRX^x+7prvI{Vv0EvA?70$dtfcN(DdJ|peBr"
    "PJ&km2NyYz@f@qbcSWhu2n;%<{URU*Cy`b6<UaN3~ukGg?_X-"
    "B)SF(}eI;1N;+_G1Yg5El&N&P$lC#0cw=+n0#EWk`{K`1U3KOTjkt9_Oh3&Q!C(hqC`J3JAvzF;6&yA7u&G?bi&?)|*zt6paS7@bA{z*Ax}pqY"
    "PYZxu@MtqBWe$bFAeo@Tsn#Z>Ae*Q1Ts4VPvuPr_gN*EK~<+Cj*jsNY!8D5Q?xlKqJ3FPbYyId&F@h*a~caH<azOVOdZ5`XHKASzv{|X{kpepM"
    "Of{h0d26#T?QA2)R0CWFk15sHT>m4=_b!Oj=g1G%)LK=Vd9`GsL%bNJEyTwzyHgPw{(^U`Ov@nhgr1rpm22KD{9F*PE^l$eH>r`56gHB{D@{G)"
    "$9j%>JtC>o;<U6t!BvhG0VXm(U=fi5G9rb`nvIr&Y5Cb5G;<FA<n~Q)PkA?Kr3RhLX*m{bBXYN^&|24?;6Wrt|;RcPQnFVh719V$%YV4W>*2bj"
    "Q7ZzSk=D`k~olKu&fVj?mW2J_PC|aMkFPtg{_c)2dG-ziajpZo(t2w@KKFmrzP9U7PrFbn}obu>dq_;mEdhm_WQ+LL`eh6CFU<sCuw1b{#0-"
    "skP-"
    "^a=nfmPGjWjG$ul=%V^S;{je$6#1G>T;8Cd5(ke_fq^jm_*1;QOq<0hvmzrP4rC|O)2kl3;S*zZ55{G};r1ay}wq>D%Fzor?Hu(C&$78oxb-"
    "M~}2Yv8D^}fzDLEmD&L+Z|K{tQCoMyE|`()EcU$SLlc$GR6NqNf);@^8i~-"
    "#zoty?NMS<#}#4424Lt)!uXR2YaeqcvFrAgd4Nejl8ih8_G?Da@!<<^m;!50w(dQSsy2bgOp_600`abx3=gZo#5CI<Umo@^$C2iORBzgfNE|*W"
    "jE)h@vdS2ZI_4B)D|^QI7&<X0ESR4ka=HHmlLD^t^D+sD3EcuOIoLk%5n?g8Jg2?xiOyvAZWE?cN+?3B?z75yDw@fE*658kV%-"
    "i(@3SI{t_oV*ac#XdU;p0bK<@C3PeebG$h;<D&F>v`&R}yP#!l)kfccZcqx9|GGM4+Jo=CdL^Z&}BOAG^-5}<@F(^7cu-"
    "}f68jp*GXbn}I@;zONBv!sjP;!&*w6QkcsShE~nnAn$mt&VDsHy*b?J~dO8^aSh?zkO%#XS+)@mu{_x~4@j7K;(?f`lMfA=JwqNaB?i31JuZ1Q"
    "x!ce*5^tN3eL<`}i2RIA-u8eCFfRVU)>|(DyB~w)~*XtI&kNiFV#g1bX9~-"
    "@>bTB~E>>4(L!cU49{Sq>l~yPz!udy8N#5qOpqTzf)z5o2yOB0YlwvLG|>Q20Mia@#}gsnzvu6?LZmuql|EhY_~9?=t2=JiqR!9oE}|AQ00NIu"
    "|QM8^y>t|oqV7AZ-Opsu`acuLtr9)MLqU`Oho${#?D+KFL(O=Q2dr><vd4?oks6=makPX`8lSibFF;ixuQaRnaVwk*)u$rPmS&BBQEhFLE<~yp"
    "v6wx00000?-gNh8CppJ00EK_*yjQOcIW`JvBYQl0ssI200dcD"
)

PANDAS_RESPONSE = (
    "{Wp48S^xk9=GL@E0stWa8~^|S5YJf5;WQx*k6i#nk_3crdV6<D#AZ)w9S?G89vI9X@|mdWoNYA37)xr{XCNwvjeFS4ba=%;6sr_y4;^o3-"
    "Kd~Knh|X_a1_Q4$~d+Lri)Akk{nPl@agi7IL-g`CS|;bMt@g;^We-RMP6cLxbLw?W;LhTyEzquYI~2yw!W8dsW5IbDVSY;n82xx5MGpr_9kJlP"
    "nT(xf&&80Qoxcs;MOXxV%QsXUJGR9i8agAxcG32qUkkD@#yvkU+<EG)y>6P95haGNZjrBUZhFCaw&RVqLLV|Xpr}KZ0?)kWob0#ADc2u5_2a7_"
    "?SX#>?@`jg*j-"
    "hYJnT<&_h>BEf8G}{Nq|~p9E@}$afa^KO775ds6whXz@3&zVoQ?TWNX8ti#B$nlhlRNQAsx1HDJgF;#>+ma*WA%p?5XVuz&eWzJ`I+ya*FfJHp"
    "A-}qu4aMJSrngVzyYF2S>?kUSgw5(9OtBCGqb&}{YioCdJ@=FkPpdKP(@cn#Q!2Tcbp~Gip8>`p%Kc59;uTe-"
    "+XX)!^S`lj}(g&F1#eslh5SDLWZ(ilPXrTCmE7j6)fyW}wK&@WX63hB5@6loJpq8V^l%*cAK;R>|T^`=C5cVZ4qGoF`|A76j2<}x}fdSXms72>"
    "%7#C=}Kej?nwPac3-{H^`floItBo$*1uU9a7ju&PsV|xNiav^7&&(wuq^6iT5`HzH<*KFF8+two9{uU3XcN~`>+w_#@A%^45N-"
    ";L)e<Q{kg_vXPsvWuMbUc+8EF50k(3ZoV#PxL@s3bw12amdtKp;1};%;gFR>rH1{OP9aQz=buv&kybdr&EpErWH|s7SSbR(P6fhHOF2LEz&U+@"
    "q3(VqzWj`M<4{%I9_~<pQZ#C0h5pU+P;a+0XP<!M15)n;2U1T&J%yM1ziiq=iqRBDC&M0*e8iweDg(iuB|Hw&V=Z<mX*pbjUx;<?q%6f45JpwR"
    "T~FSNH``4HTAo9_7?@^oh%|iaxSP9mr-l{B$-"
    "3(BG4?^r8tlKZF=o&y8WAS(xwj`Ht|9H4!nD2o;YuVikK^`6#|2qxS3+hhju2rqRA%P2JMvoc<8hCbO4XkpXJ#;Pk52&attan6%dsD-"
    "5)|xfL8#I1BpBC4ZeU98MG9K}*oCc{WHmfVs<q<4?PSfBWsP0q!6$kDgZpS=A5_KZAJ|Z%u{<cir{W`0FXQuzlRklYXdonrxIHQO)FzmICjbCn"
    "C9mCL2x^WXBK)0m+n6%S1*{4xiHcn&;|0T{(Ci#|l>M*2q8o3J<TDX=y9wFteqOJ}Ro33Z~1T6OA*Hl>_J^U;pX{9JeP00Rgw-"
    "G1S#N_IDunN+wW4ZnTA=F>0eFveE(mElWRl1o%XStsxjJWJHppq{AH(_{t54TH^H@0V;cX)u{#m8vBLGiz!@*yVCb7sADN-"
    "o+hk8sS_%801<~^fdt2I-"
    "1<P`v$6nqS1l8n11o1iP6ieKMProjo(Og0=Jh>Upj0I(nSIK2rN7YLd_kqyOFMV&2Zs|(PWvwihJ#psVO}<2El34_u}eYJTgLHoURMkttxPtv("
    "WYUo9H&X2`uUs`?(g=+ieTZ?>8UoBcCl6qEm*S1;9!?T*P|9Ik&~;|4A{Ae!W2I)s0S7O`9}RU>@=N3XrX2uZNX9pYNVZd^7h--"
    "(E}|2R8430v#OQ|FqHZRlZb%f&I?m%^0qW}^fe*&nsrQWJiWj+J=Zan`V|(&#`#bIxf>{y&r-"
    "?|02v|Jco0pqgVN1<UA*}hKw~h12i>UWZo@^Hdg&}7`EQ>BK8Lrp(@30Q1+oSQ+$~p?T>%!tAD@(^V#BbeZqd_xAF9ovW4d?>35caVXcT;uqqA"
    "5SaJqCXLo?~Gm%0f{xXPg@i5bs8O;?u;lGMKW8yk=lu~0BE1hTE4#qyeq!&p47w)QS$637!Mje<v+_wl0`!VKRYLy;99eKtgu^h8VO(!FL6AOs"
    "bkK-LsNLM4I!8mtqvh)-L-"
    "tPK(4G}vGlHyp2|LPrfirQVcgBMeUj$@uDwNz2pBL3YbH916tv#v1_HUfgyeYQ4erh!octt0r^Jl;AY}3=VZ~{y*=haPuUfAksvk_a$>DQDGlI"
    "f>QwyAt&azo<6M11t4_hyIta=V&0(dg)8a#6L`*6jaG2_e1D4Ki}mF-)dwngU0J0H{UBE)kDlaib~ojD^y9#(cl9l_#-"
    "j!ZYbg=;sP<7;y3zdI=Sk;OJx)0##K$X^9Lu2CRY`pOHIpG;96rWJN>-ncYvLeV)XuN=)MzR9ofkNG<9f0uWaz|qFrSr#%(VrM9D=4)NN3*z-"
    "22V}{8g4<CK`=Sk2FX|hg!O6Bcw$rl~LV(w1B5_3#)T!08NmnVMb~1Nbr<$F5FxSd6xI~);mMCBn2yuHw$GUu9Lm60=q^l8>hS~*?89Nxl&cot"
    "t|Qnx-"
    "UYa+-JxA0untb0kN%E4Z)^b8j!Gg?c`BA?mQxTQoDJ(<()tY!|dHBJG%edg9OD`NtWE*(i`08{wBUgNQ_Dy`(an;=Wm@()&ka!oS-52`GWj--i"
    "^k!ZX)LS>*0@<;F-tMBCx$@!@p?+lEB7``s6L5sLH&pW0R23$S*T0MiW9L=hKg|Gk45LN-"
    "#jbd3_{w{jvZRfTnk)C%Yor>5knAiL_~n^SE2h_Rtqedcq4~e3t2Re8XJtcJ0@PSZT7y{b<UBVL23a2Pc$zhT9iQ<GiPbC)l#E12c5E<HOoQ#q"
    "%9YraBIU)_q;2R;9m1piAklH#0O6Vq$v6vDnnSs)jDL02USo3d<~`VK4CE-EsAr3OWhjg*3IPN~yIK`~L+-"
    "0zK7iYQdP4#+vwYJH{7E>euPS2!DE@0G`K<0qkz-"
    "K7LYu@WSGNR4Iy4v<@s=JGkF0d8wra+=y6mWf>Cdgu%E>!2LomDzYCa@F<!IobrKfUvsuEUt`q!H<2}=XSCBR_A(%iJ+%bpy(QfiG%#`!X~fY7"
    "2Yld?!ot5X-Di`TG-_|n$w^0Y+`bwMNt=&b!84yj2~GNYo^A?Hraix~-"
    "B41z*6%Pn<Gw`z1Me_6u4>B#5tcn<dGG8(%FxM??QOI=@7z;ThG`y?)RMJc@|E9%XaI%5Z$g0P%+;Bqd=rF<+GVk_n!DT0=0x39a;W>Mk+19ub"
    "@-e`ooCluPtlE?&z$ev8p<fx5#ws^+ttl%$f3^y8^n$;A6tj4B-9q2GkHh&v3s{7s-$qY!atV<7F+|-IxOL8n}l7oS1g>r#-"
    "4So!(are7n2|WgiiGWc~Pa5ElQgFg%FQHGDsahXFa4R$wv!Q3Wk|d?Bw{E*&RFV&5=T1%JGLt-9rA|oKIagF`y_(LKY&QnKb=8Ev|`VW-uFhE2"
    "j+TYvy0p4Y9T1CWLYwxlbeWFxLkymefKI6v6>#R6@Vgb-r$Zzl#<OKKsHsVB-~RcPq=2Iq+p1Trt?m(_Y?{=hx!^Rd%6Q=PciNE#-"
    "{EB9eYkxywKyO#)5p0oo4}FUWmz{^XwE_|r9t^(Ig2q(gCnp4U&XrNqNje!JxMDyu*}<fmCne}`Hc!F9^m{oML=pB?kwe(Al+yjCeL)n>XB4Yi"
    "u2ElNNJ+gaQP&Vvx?5n|fZ3|rrJyJqTKgi3wUaWGDovjwbWzcVv3pY77Qv_d}NuqB{TcwqkErn2o6H51HSb<?DBTMo!btrX-zlw-`z%-"
    "aylqr(er$*Go@chs%>vccrr@64y@noO=J21mvl*l0WHy{Ka0^$s3E(LA$Kkh^v3oMkjYC(^p*1UOyirys80Xm@FDN(}{!QpnE+mMTeFIsPgg>p"
    "0vsQ;lYcMVhXc^HCH~XUW-ft+iGH_qz!&a7jbni<B~4ZU7M`E{Y{0#Po`D6=1guT(@4$Y9<sLrH90PA_z*F<>k=9ybopj6uM%x-"
    ";P}2Ks_v;0Tqz7yz352T9?~GA31R42dR}3ir4P-D+?dA#x-*ClQ6yt9L`qM*6qaO{axxV*F-_ZgjI@q&%48@dM~M;-{-z@82oSuo$y@}6BV-Eh"
    "lR_VDS4b%$>BW8{-o0hW^SZlf8PG&QKTbKF1VStY!+S5Oi}4T0FE6ue3X+7N(kJ$=didOFbjDFa!E)|YD~-"
    "{4pfm=qS?%++Xk9T7Y3I3(jK9$r67E;9nvmHQPyv)C>b#Wn?uAN$~>Lt#3&_BG9`Giv8mB%a|Gb418|_iV$Ok>{yuU@ccT#t_Yrkf*hV!R!kqI"
    "`ze}&Kk0`vseU&wH)CKAy2U0A&;=DH*mx4btwuoL-FLGdsoaW5WoUK-x;5S>?$W#0ke^0;x;}H@z*7`y1^c-"
    "$_Q}EF8P!SPm2N6yPFu!U4N<4>1GlBrJ`ZEpB$=k#R;UEX|RXsKS92p3^Hx-"
    "^;<=J}0l`L$u?r!NtE0!DHS7=EnY(HBPe?h8xF=TjY0B;VKVOX)dNCz8McF$A@BpiwF+9)CK5AB{l=le;F#?n*n?GE2=q!iNs3Duttuc3wEMeA"
    "wMPsIDmf$X^9+fmE`b-"
    "U9MR7^~tatKA@)ZiLfEd8nw_w}<5xN@pTVu*Z%^mXy`Qc+nTqz4SG^ra3==x$zXQ>Sxs>uNM@PjDG3Ikf0;__R^{C`G+4SDyy^m=1)(U91OSyx"
    "-H0H~51!k{kxcCOP7#@G0p++ZkuY)BFV6mvoXAKwT76UsP`)Hr$MDhY17AO+36J4sZLVOj18AWr9{q*bp^OC|5Me=Ho>?!^%JhF<AWuWErkrs`"
    "-Bmjl}xpR%O6;yJ7DTfJc6{ZOkXt1Qk;jMsMWA7cevGI)-Wus$6#=cWh?<(^w)U2&=zrn3n(K#MS{#3%QEkbzes*_~`L_fDVrAN8f;|6tn;U-"
    "n$QiS@sRe00FBVqUZzwQS$)|vBYQl0ssI200dcD"
)


def _unpack(blob: str, path):
    path.write_bytes(lzma.decompress(base64.b85decode("".join(blob))))
    return path


# --------------------------------------------------------------------------------------------------
# maptrees
# --------------------------------------------------------------------------------------------------


def _maps(roi: HealpixROI, names, seed=3):
    rng = np.random.default_rng(seed)
    n = len(names)
    counts = HealpixMaps(rng.poisson(4.0, (n, roi.n_pix)).astype(float), roi, names)
    background = HealpixMaps(rng.uniform(0.5, 9.0, (n, roi.n_pix)), roi, names)
    return counts, background


@pytest.mark.parametrize("suffix", [".root", ".hd5", ".hdf5"])
def test_maptree_round_trip_bit_identical(tmp_path, suffix):
    roi = HealpixROI.from_disc((83.63, 22.01), 4.0, nside=32, nest=False)
    names = ("0", "1c", "10")
    counts, background = _maps(roi, names)
    path = write_maptree(tmp_path / f"m{suffix}", counts, background, n_transits=365.25)
    c2, b2, meta = read_maptree(path)
    assert c2.bin_names == b2.bin_names == names
    assert c2.roi.same_as(roi) and not c2.roi.nest
    assert np.array_equal(c2.data, counts.data) and np.array_equal(b2.data, background.data)
    assert meta["n_transits"] == 365.25 and meta["nside"] == 32 and meta["scheme"] == "RING"
    assert meta["format"] == ("root" if suffix == ".root" else "hdf5")
    # an explicit ROI (here a smaller one) reads the same values
    small = HealpixROI.from_disc((83.63, 22.01), 1.5, nside=32, nest=False)
    c3, b3, _ = read_maptree(path, roi=small)
    idx = roi.index_of(small.pixels)
    assert np.array_equal(c3.data, counts.data[:, idx]) and np.array_equal(b3.data, background.data[:, idx])
    # n_transits that is not a multiple of 1/24 h survives to the last bit or two (ROOT stores hours)
    path = write_maptree(tmp_path / f"t{suffix}", counts, background, n_transits=123.4, overwrite=True)
    assert read_maptree(path)[2]["n_transits"] == pytest.approx(123.4, rel=4 * np.finfo(float).eps, abs=0)


@pytest.mark.parametrize("suffix", [".root", ".hd5"])
def test_maptree_nested_roi(tmp_path, suffix):
    roi = HealpixROI.from_disc((300.0, -10.0), 3.0, nside=16, nest=True)
    counts, background = _maps(roi, ("a", "b"), seed=7)
    path = write_maptree(tmp_path / f"n{suffix}", counts, background, n_transits=[10.0, 11.0])
    c2, b2, meta = read_maptree(path, roi=roi)  # NESTED ROI read from a RING file
    assert c2.roi.same_as(roi)
    assert np.array_equal(c2.data, counts.data) and np.array_equal(b2.data, background.data)
    assert meta["n_transits"] == 11.0 and np.array_equal(meta["n_transits_per_bin"], [10.0, 11.0])
    c3, _, _ = read_maptree(path)  # default: the file's own (RING) pixels
    assert np.array_equal(np.sort(c3.roi.pixels), np.sort(hp.nest2ring(16, roi.pixels)))
    assert np.array_equal(c3.to_full_sky(1), hp.reorder(counts.to_full_sky(1), n2r=True))
    with pytest.raises(HALFormatError, match="nside 16.*ROI nside 32"):
        read_maptree(path, roi=HealpixROI.from_disc((300.0, -10.0), 3.0, nside=32))


def test_maptree_written_by_pandas_is_read(tmp_path):
    path = _unpack(PANDAS_MAPTREE, tmp_path / "pandas_maptree.hd5")
    counts, background, meta = read_maptree(path)
    assert counts.bin_names == ("0", "1") and counts.roi.nside == 4 and not counts.roi.nest
    assert np.array_equal(counts.roi.pixels, [5, 7, 100, 101])
    assert np.array_equal(counts.data, np.arange(4.0) + 10 * np.arange(2)[:, None])
    assert np.array_equal(background.data, 0.5 * np.arange(4.0) + np.arange(2)[:, None])
    assert meta["n_transits"] == 12.5 and meta["stored"] == "partial"
    assert meta["file_roi"] == {
        "ROI type": "HealpixConeROI",
        "ra": 1.0,
        "dec": 2.0,
        "data_radius_deg": 3.0,
        "model_radius_deg": 4.0,
    }
    with pytest.raises(HALFormatError, match="ROI are not among them"):
        read_maptree(path, roi=HealpixROI(4, False, [5, 6]))


def test_maptree_hdf5_layout_matches_pandas(tmp_path):
    """skyfit writes with h5py the groups, data sets and attributes that pandas writes."""
    import h5py

    ref = _unpack(PANDAS_MAPTREE, tmp_path / "pandas_maptree.hd5")
    roi = HealpixROI(4, False, [5, 7, 100, 101])
    names = ("0", "1")
    counts = HealpixMaps(np.arange(4.0) + 10 * np.arange(2)[:, None], roi, names)
    background = HealpixMaps(0.5 * np.arange(4.0) + np.arange(2)[:, None], roi, names)
    ours = write_maptree(tmp_path / "ours.hd5", counts, background, n_transits=12.5)

    def layout(path):
        out = {}

        def visit(name, node):
            attrs = {}
            for key in node.attrs:
                if key in ("pandas_version", "TITLE", "VERSION", "CLASS", "FLAVOR"):
                    continue
                value = node.attrs[key]
                attrs[key] = value.decode() if isinstance(value, bytes) else value
            data = node[()] if isinstance(node, h5py.Dataset) and name.startswith("analysis_bins") else None
            out[name] = (type(node).__name__, attrs, data)

        with h5py.File(path) as f:
            f.visititems(visit)
        return out

    a, b = layout(ref), layout(ours)
    analysis = [k for k in a if k.startswith("analysis_bins")]
    assert sorted(analysis) == sorted(k for k in b if k.startswith("analysis_bins"))
    for key in analysis:
        kind_a, attrs_a, data_a = a[key]
        kind_b, attrs_b, data_b = b[key]
        assert kind_a == kind_b, key
        assert attrs_a.keys() == attrs_b.keys(), key
        for name in attrs_a:
            if name != "metadata":
                assert np.array_equal(attrs_a[name], attrs_b[name]), (key, name)
        if data_a is not None:
            assert np.array_equal(data_a, data_b), key
    for key in ("ROI", "ROI/index", "ROI/values"):
        assert key in b
    assert read_maptree(ours)[2]["file_roi"] is None  # not a disc ROI: no HealpixConeROI dict


def test_maptree_blosc_needs_hdf5plugin(tmp_path):
    path = _unpack(PANDAS_MAPTREE_BLOSC, tmp_path / "blosc_maptree.hd5")
    try:
        import hdf5plugin  # noqa: F401
    except ImportError:
        with pytest.raises(HALFormatError, match=r"filter 32001.*pip install hdf5plugin"):
            read_maptree(path)
    else:
        counts, _, _ = read_maptree(path)
        assert np.array_equal(counts.data, np.arange(4.0) + 10 * np.arange(2)[:, None])


# --------------------------------------------------------------------------------------------------
# responses: pandas-written HDF5 fixture (no data needed)
# --------------------------------------------------------------------------------------------------


def test_pandas_response_is_read(tmp_path):
    path = _unpack(PANDAS_RESPONSE, tmp_path / "pandas_response.hd5")
    e = np.array([0.5, 1.0, 2.0, 4.0])
    with pytest.warns(HALPSFFallbackWarning, match="bin '1' is unusable in the band at 20.0 deg"):
        resp = read_hal_response(path, dec_deg=21.0, n_transits=2.0)
    assert resp.bin_names == ("0", "1")
    assert np.array_equal(resp.dec_nodes_deg, [-5.0, 20.0]) and np.array_equal(resp.energy_true_tev, e)
    for d, dec in enumerate((-5.0, 20.0)):
        for j in range(2):
            expected = 2.0 * (j + 1) * (dec + 10) * np.array([1.0, 2.0, 3.0, 4.0]) / (1e-11 * e**-2.5)
            np.testing.assert_allclose(resp.counts_matrix[d, j], expected, rtol=1e-12)
    for j in range(2):  # Gaussian PSF of sigma 0.5 / (j + 1): r68 = sigma sqrt(-2 ln 0.32)
        r68 = 0.5 / (j + 1) * np.sqrt(-2 * np.log(0.32))
        assert resp.psf.containment_radius(0.68, j) == pytest.approx(r68, rel=5e-3)
    assert resp.meta["psf_dec_band"]["center_deg"] == 20.0
    assert np.isnan(resp.meta["psf_r68_deg"][1, 1])
    assert np.array_equal(resp.meta["psf_dec_band_per_bin_deg"], [20.0, -5.0])
    with pytest.raises(HALFormatError, match=r"declination 60.0 deg is outside the response's bands \[-17.5, 32.5\]"):
        read_hal_response(path, dec_deg=60.0)


def test_maptree_dataset_matches_bins_by_name(tmp_path):
    resp_path = _unpack(PANDAS_RESPONSE, tmp_path / "response.hd5")
    roi = HealpixROI.from_disc((10.0, -5.0), 2.0, nside=32, nest=False)
    counts, background = _maps(roi, ("1", "0"))
    mt = write_maptree(tmp_path / "maptree.root", counts, background, n_transits=50.0)
    ds = maptree_dataset(mt, resp_path, roi=roi, name="hal")
    assert ds.name == "hal" and ds.bin_names == ("1", "0") and ds.response.bin_names == ("1", "0")
    full = read_hal_response(resp_path, dec_deg=-5.0, n_transits=50.0)
    assert np.array_equal(ds.response.counts_matrix, full.counts_matrix[:, [1, 0]])
    assert np.array_equal(ds.counts.data, counts.data) and ds.meta["n_transits"] == 50.0

    counts, background = _maps(roi, ("0", "x"))
    bad = write_maptree(tmp_path / "other_bins.hd5", counts, background, n_transits=50.0)
    with pytest.raises(HALFormatError) as info:
        maptree_dataset(bad, resp_path)
    msg = str(info.value)
    assert str(bad) in msg and str(resp_path) in msg and "['x']" in msg


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------


def test_bad_files_name_the_file_and_the_fix(tmp_path):
    roi = HealpixROI.from_disc((83.63, 22.01), 3.0, nside=16, nest=False)
    counts, background = _maps(roi, ("0", "1"))
    fits = tmp_path / "map.fits"
    counts.write(fits)
    for reader in (read_maptree, read_hal_response):
        with pytest.raises(HALFormatError, match=r"map\.fits: a FITS file.*HealpixMaps\.read"):
            reader(fits)
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"not a maptree at all")
    with pytest.raises(HALFormatError, match="junk.root: neither a ROOT nor an HDF5 file"):
        read_maptree(junk)
    with pytest.raises(HALFormatError, match="nope.root: no such file"):
        read_maptree(tmp_path / "nope.root")

    for suffix, what in ((".root", "truncated ROOT file"), (".hd5", "truncated")):
        full = write_maptree(tmp_path / f"full{suffix}", counts, background, n_transits=1.0)
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(HALFormatError, match=f"cut{re.escape(suffix)}: .*{what}.*copy"):
            read_maptree(cut)

    with pytest.raises(HALFormatError, match=r"full.root: no 'LogLogSpectrum'.*is it a maptree"):
        read_hal_response(tmp_path / "full.root")
    with pytest.raises(HALFormatError, match=r"full.hd5: no '/dec_bins_definition'.*is it a maptree"):
        read_hal_response(tmp_path / "full.hd5")
    with pytest.raises(HALFormatError, match=r"\.txt'?: unknown maptree suffix"):
        write_maptree(tmp_path / "m.txt", counts, background, n_transits=1.0)
    with pytest.raises(FileExistsError):
        write_maptree(tmp_path / "full.root", counts, background, n_transits=1.0)


def test_missing_keys_are_named(tmp_path):
    import h5py
    import uproot

    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f.mktree("foo", {"x": "float64"}).extend({"x": np.zeros(3)})
    with pytest.raises(HALFormatError, match="other.root: no 'BinInfo' tree"):
        read_maptree(path)
    with pytest.raises(HALFormatError, match="other.root: no 'LogLogSpectrum'"):
        read_hal_response(path)

    path = tmp_path / "no_maps.root"  # BinInfo but no per-bin trees
    with uproot.recreate(path) as f:
        f.mktree("BinInfo", {"name": "string", "totalDuration": "float64"}).extend(
            {"name": np.array(["3"]), "totalDuration": np.array([24.0])}
        )
    with pytest.raises(HALFormatError, match=r"no_maps.root: none of \['nHit3/data', 'nHit03/data'\]"):
        read_maptree(path)

    path = tmp_path / "partial.hd5"
    with h5py.File(path, "w") as f:
        f.create_group("analysis_bins")
    with pytest.raises(HALFormatError, match="partial.hd5: no '/analysis_bins_meta'"):
        read_maptree(path)


# --------------------------------------------------------------------------------------------------
# the public Geminga response (HAWC, as shipped with hawc_hal's tests)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def geminga_response(hal_response):
    """The public HAWC HAL response (conftest's ``hal_response``: skips, saying how to get it, when absent)."""
    return hal_response


@pytest.fixture(scope="module")
def raw_geminga(geminga_response):
    """The response straight from uproot, without skyfit: per band (DecBins order) and bin."""
    import uproot

    with uproot.open(geminga_response) as f:
        decs = f["DecBins"].arrays(library="np")
        ids = [str(int(v)) for v in f["AnalysisBins"]["id"].array(library="np")]
        norm, index = f["LogLogSpectrum"].member("fParams")  # log10(dN/dE) = log10(norm) - index log10(E)
        out = {"simdec": decs["simdec"], "names": ids, "norm": norm, "index": index, "signal": {}, "psf": {}}
        for d in range(len(decs["simdec"])):
            for b in ids:
                h = f[f"dec_{d:02d}/nh_{int(b):02d}/EnSig_dec{d}_nh{b}"]
                out["signal"][d, b] = (h.axis().edges(), h.values())
                tf1 = f[f"dec_{d:02d}/nh_{int(b):02d}/PSF_dec{d}_nh{b}_fit"]
                hist = f[f"dec_{d:02d}/nh_{int(b):02d}/PSF_dec{d}_nh{b}"]
                out["psf"][d, b] = (tf1.member("fParams"), hist.axis().edges(), hist.values(), hist.member("fEntries"))
    return out


def _reference_dnde(e_tev):
    return 1e-11 * e_tev**-2.6  # TeV^-1 cm^-2 s^-1, HAL's flux units


def _raw_counts(raw, d, b, n_transits=1.0):
    """HAL's expected counts: n_transits sum_k S_k f(E_k) / f_sim(E_k), E_k = 10^(log-bin centre)."""
    edges, signal = raw["signal"][d, b]
    log_e = 0.5 * (edges[1:] + edges[:-1])
    f_sim = raw["norm"] * 10.0 ** (-raw["index"] * log_e)
    return n_transits * np.sum(signal * _reference_dnde(10.0**log_e) / f_sim)


def _tf1_cumulative(r, p):
    """Integral from 0 to r of HAL's PSF fit p0 r (p1 e^(-r^2/2 p2) + (1 - p1) e^(-r^2/2 p3)), analytically."""
    return p[0] * (p[1] * p[2] * -np.expm1(-(r**2) / (2 * p[2])) + (1 - p[1]) * p[3] * -np.expm1(-(r**2) / (2 * p[3])))


def _tf1_containment(r, p):
    """HAL's containment: the fit normalised on [1e-3, 15] deg."""
    return (_tf1_cumulative(r, p) - _tf1_cumulative(1e-3, p)) / (_tf1_cumulative(15.0, p) - _tf1_cumulative(1e-3, p))


@pytest.mark.data
def test_geminga_expected_counts_every_band_and_bin(geminga_response, raw_geminga):
    resp = read_hal_response(geminga_response, n_transits=3.0)
    assert resp.bin_names == tuple(raw_geminga["names"]) == tuple(str(i) for i in range(10))
    assert np.array_equal(resp.dec_nodes_deg, raw_geminga["simdec"])
    assert resp.meta["instrument"] == "HAWC" and resp.meta["format"] == "root"
    counts = resp.counts_matrix @ _reference_dnde(resp.energy_true_tev)  # (n_dec, n_bins)
    for d in range(len(raw_geminga["simdec"])):
        for b, name in enumerate(raw_geminga["names"]):
            assert counts[d, b] == pytest.approx(_raw_counts(raw_geminga, d, name, 3.0), rel=1e-6, abs=1e-300), (d, b)
    assert counts.sum() > 0


@pytest.mark.data
def test_geminga_psf_r68_every_band_and_bin(geminga_response, raw_geminga):
    """The 3-Gaussian mixture reproduces HAL's PSF: r68 within 1 %, containment within 0.01.

    Tolerance: the fitted mixtures follow HAL's containment curve to <= 0.0072 (largest over all 229
    usable PSFs, 1e-3..15 deg); with r dC/dr ~ 0.7 at the 68 % radius of these near-Gaussian profiles
    that bounds the r68 error by ~1 % (the largest seen is 0.24 %, for the broadest, 15-deg-truncated
    PSFs at the edge of the field of view). The raw histograms (0.05 deg bins, normalised on 0..10 deg)
    are checked more loosely: HAL's 2-Gaussian fit itself departs from them by up to 8 % in r68 for
    narrow PSFs (r68 < 1 deg) and up to 20 % for the broad low-nHit ones; a mix-up of bins or bands
    would be off by factors.
    """
    grid = np.linspace(1e-3, 15.0, 3001)
    n_checked = 0
    for d, dec in enumerate(raw_geminga["simdec"]):
        if d == len(raw_geminga["simdec"]) - 1:  # bin 9's fit at 75 deg has a negative integral
            with pytest.warns(HALPSFFallbackWarning, match="bin '9' is unusable in the band at 75.0 deg"):
                resp = read_hal_response(geminga_response, dec_deg=dec)
        else:
            resp = read_hal_response(geminga_response, dec_deg=dec)
        assert resp.meta["psf_dec_band"]["center_deg"] == dec
        for b, name in enumerate(raw_geminga["names"]):
            params, edges, values, entries = raw_geminga["psf"][d, name]
            if not _tf1_cumulative(15.0, params) > 0:  # HAL's InvalidPSF
                assert (d, b) == (22, 9)
                assert np.isnan(resp.meta["psf_r68_deg"][d, b])
                assert resp.meta["psf_dec_band_per_bin_deg"][b] == 70.0
                continue
            r68 = brentq(lambda r: _tf1_containment(r, params) - 0.68, 1e-3, 15.0)  # noqa: B023
            assert resp.meta["psf_r68_deg"][d, b] == pytest.approx(r68, rel=1e-6)
            assert resp.psf.containment_radius(0.68, b) == pytest.approx(r68, rel=0.01), (d, b)
            diff = resp.psf.containment(grid, b) - _tf1_containment(grid, params)
            assert np.max(np.abs(diff)) < 0.01, (d, b)
            if entries > 1e4:  # the raw histogram, where it has the statistics
                cum = np.concatenate([[0.0], np.cumsum(values)])
                r_hist = np.interp(0.68, cum / cum[-1], edges)
                tol = 0.10 * r_hist + 0.025 if r68 < 1.0 else 0.25 * r_hist
                assert abs(resp.psf.containment_radius(0.68, b) - r_hist) < tol, (d, b, r_hist)
            n_checked += 1
    assert n_checked == 229


@pytest.mark.data
def test_geminga_hdf5_conversion_round_trip(geminga_response, tmp_path):
    h5 = hal_response_root_to_hdf5(geminga_response, tmp_path / "geminga_response.hd5")
    disguised = shutil.copy(h5, tmp_path / "response.dat")  # the format is found from the content
    root = read_hal_response(geminga_response, dec_deg=17.8)
    for path in (h5, disguised):
        conv = read_hal_response(path, dec_deg=17.8)
        assert conv.meta["format"] == "hdf5" and conv.bin_names == root.bin_names
        assert np.array_equal(conv.dec_nodes_deg, root.dec_nodes_deg)
        assert np.array_equal(conv.energy_true_tev, root.energy_true_tev)
        assert np.array_equal(conv.counts_matrix, root.counts_matrix)
        assert np.array_equal(conv.psf.sigma_deg, root.psf.sigma_deg)
        assert np.array_equal(conv.psf.weights, root.psf.weights)
        assert np.array_equal(conv.meta["psf_r68_deg"], root.meta["psf_r68_deg"], equal_nan=True)
        assert np.array_equal(conv.meta["n_sim_bkg_events"], root.meta["n_sim_bkg_events"])
    with pytest.raises(FileExistsError):
        hal_response_root_to_hdf5(geminga_response, h5)


@pytest.mark.data
def test_geminga_table_at_22_deg(geminga_response, raw_geminga):
    text = hal_response_table(geminga_response, 22.0)
    print(text)
    rows = [line.split() for line in text.splitlines()[2:12]]
    assert [r[0] for r in rows] == raw_geminga["names"]
    d20, d25 = list(raw_geminga["simdec"]).index(20.0), list(raw_geminga["simdec"]).index(25.0)
    for b, row in enumerate(rows):  # linear interpolation between the 20 and 25 deg bands, as HAL does
        name = raw_geminga["names"][b]
        expected = 0.6 * _raw_counts(raw_geminga, d20, name) + 0.4 * _raw_counts(raw_geminga, d25, name)
        assert float(row[1]) == pytest.approx(expected, rel=1e-4)
        assert float(row[2]) == pytest.approx(float(row[3]), rel=0.01)
    with pytest.raises(HALFormatError, match=r"declination 80.0 deg is outside the response's bands \[-37.5, 77.5\]"):
        read_hal_response(geminga_response, dec_deg=80.0)


@pytest.mark.data
def test_geminga_maptree_dataset(geminga_response, tmp_path):
    roi = HealpixROI.from_disc((98.48, 17.77), 3.0, nside=64, nest=False)
    counts, background = _maps(roi, tuple(str(i) for i in range(10)))
    mt = write_maptree(tmp_path / "geminga_maptree.hd5", counts, background, n_transits=100.0)
    ds = maptree_dataset(mt, geminga_response)
    one = read_hal_response(geminga_response, dec_deg=ds.meta["dec_deg"])
    np.testing.assert_allclose(ds.response.counts_matrix, 100.0 * one.counts_matrix, rtol=1e-14)
    assert ds.response.meta["psf_dec_band"]["center_deg"] == 20.0
